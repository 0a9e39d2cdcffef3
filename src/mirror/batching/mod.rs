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
//! ([`kmirror_wire::rebuild`]); a merge is compressed faster than Kafka's level, a batch
//! rebuilt alone at Kafka's level. (A delete horizon set by the source's cleaner needs no
//! rebuild: the stamp clears it.) LogAppendTime batches are always rebuilt, into CreateTime
//! batches whose records carry the source's append time: that is what a consumer of the
//! source saw, and a CreateTime target topic would otherwise show the original create
//! times instead (Kafka rewrites a client's LogAppendTime attribute).
//!
//! Nothing here sends or stamps; memory permits travel with the batches until acked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kmirror_wire::batch::{BatchError, BatchView};
use kmirror_wire::rebuild::{self, RebuildError};

use super::memory::Share;

mod rebuild_run;

pub use rebuild_run::{Rebuild, Rebuilt};

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
pub struct Unit {
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
    pub permits: Permits,
}

/// The memory shares a batch holds: one for a batch forwarded as it is (no allocation),
/// one per source fetch for a merged one.
pub type Permits = smallvec::SmallVec<[Arc<Share>; 1]>;

/// Why a partition's batches cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    #[error("the rebuild was cancelled: the runtime is shutting down")]
    Cancelled,
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
    /// Parts of a batch split ahead of the target's refusal, to send before anything else.
    split_ready: VecDeque<Ready>,
    /// The smallest batch the target refused as too large, and when.
    refused: Option<(usize, Instant)>,
    batch_bytes: usize,
    /// The flow's `batch_bytes`, restored when a refusal is forgotten.
    configured_batch_bytes: usize,
    /// Records below this offset are never produced (the partition's start position).
    skip_below: i64,
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

/// A refusal as too large is forgotten after this, so that a limit the operator raised on
/// the target topic is used without a restart: the next batch of that size is sent whole
/// again, and split again if the target still refuses it (one wasted round trip per
/// partition per period, as path MTU discovery probes again after 10 minutes, RFC 1191).
pub const FORGET_REFUSAL_AFTER: Duration = Duration::from_secs(600);

impl Batcher {
    pub fn new(batch_bytes: usize, skip_below: i64) -> Self {
        Self {
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            split_ready: VecDeque::new(),
            refused: None,
            batch_bytes: batch_bytes.max(1),
            configured_batch_bytes: batch_bytes.max(1),
            skip_below,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.split_ready.is_empty()
    }

    /// The smallest batch the target refused as too large within
    /// [`FORGET_REFUSAL_AFTER`], if any.
    pub fn refused_bytes(&self) -> Option<usize> {
        self.refused.map(|(bytes, _)| bytes)
    }

    /// The target refused a batch of `bytes` as too large: from now on small batches are
    /// merged up to half that, and a source batch of that size or more is split into parts
    /// of about half that before it is sent, instead of being refused first; until
    /// [`FORGET_REFUSAL_AFTER`] passes without another refusal.
    pub fn target_refused(&mut self, bytes: usize) {
        self.target_refused_at(bytes, Instant::now());
    }

    fn target_refused_at(&mut self, bytes: usize, at: Instant) {
        let bytes = self.refused_bytes().map_or(bytes, |r| r.min(bytes)).max(2);
        self.refused = Some((bytes, at));
        self.batch_bytes = self.batch_bytes.min(bytes / 2);
    }

    /// Forgets a refusal older than [`FORGET_REFUSAL_AFTER`]: batches go at the flow's
    /// `batch_bytes` again, and whole.
    fn forget_old_refusal(&mut self) {
        if self
            .refused
            .is_some_and(|(_, at)| at.elapsed() >= FORGET_REFUSAL_AFTER)
        {
            self.refused = None;
            self.batch_bytes = self.configured_batch_bytes;
        }
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

    /// The next batch to send, or the run to rebuild into it: [`Rebuild::run`] that, then
    /// hand the result to [`Batcher::rebuilt`] (the pipeline's `next_batch` does, off its
    /// thread when large: [`super::rebuilds`]). The batch is a large or lone source batch as
    /// it is, a run of tiny ones merged (small ones too when `merge_small`, see
    /// [`MERGE_ROUND_TRIP`]), or anything Kafka would refuse from a client rebuilt.
    pub fn next(&mut self, merge_small: bool) -> Result<Next, ShapeError> {
        if let Some(part) = self.split_ready.pop_front() {
            return Ok(Next::Ready(part));
        }
        self.forget_old_refusal();
        let Some(first) = self.waiting.pop_front() else {
            return Ok(Next::Empty);
        };
        self.waiting_bytes -= first.data.len();
        if first.data.is_empty() {
            return Ok(Next::Ready(Ready {
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
        let forward_records =
            (forwardable && first.base_offset >= self.skip_below).then_some(count);
        if first.data.len() >= self.small_limit(merge_small) {
            return Ok(self.lone(first, kind, forward_records));
        }
        let run = self.take_run(first, kind, merge_small);
        Ok(self.forward_or_rebuild(run, kind, forward_records))
    }

    /// What a rebuild gave: the batch to send, or, when several batches merged came out
    /// over `batch_bytes`, a smaller run to rebuild (the second half waits again: the
    /// target would refuse it, MESSAGE_TOO_LARGE: UnifiedLog.analyzeAndValidateRecords).
    /// (A merged run can come out larger than its sources: record offset and timestamp
    /// deltas against one base take longer varints.)
    pub fn rebuilt(&mut self, rebuilt: Rebuilt) -> Next {
        match rebuilt {
            Rebuilt::Ready(ready) => Next::Ready(ready),
            Rebuilt::Parts(parts) => {
                let mut parts = parts.into_iter();
                let first = parts.next().expect("a split gives one part or more");
                self.split_ready.extend(parts);
                Next::Ready(first)
            }
            Rebuilt::TooLarge {
                mut run,
                codec,
                forward_records,
            } => {
                let keep = run.len() / 2;
                for u in run.drain(keep..).rev() {
                    self.waiting_bytes += u.data.len();
                    self.waiting.push_front(u);
                }
                self.forward_or_rebuild(run, codec, forward_records)
            }
        }
    }

    /// A lone batch Kafka takes from a client goes as it is; anything else is rebuilt.
    fn forward_or_rebuild(
        &self,
        mut run: Vec<Unit>,
        codec: i16,
        forward_records: Option<i32>,
    ) -> Next {
        if run.len() == 1 {
            let u = run.pop().expect("one unit");
            return self.lone(u, codec, forward_records);
        }
        self.rebuild(run, codec, 1, forward_records)
    }

    /// One batch: as it is when Kafka takes it from a client and the target has not
    /// refused its size; otherwise rebuilt (split in parts under a refused size).
    fn lone(&self, u: Unit, codec: i16, forward_records: Option<i32>) -> Next {
        let Some(records) = forward_records else {
            return self.rebuild(vec![u], codec, 1, forward_records);
        };
        let len = u.data.len();
        // A refused size is 2 or more, so a batch of that size or more splits in 2 or more.
        if let Some(refused) = self.refused_bytes().filter(|&r| len >= r && records > 1) {
            let parts = len.div_ceil((refused / 2).max(1));
            return self.rebuild(vec![u], codec, parts, forward_records);
        }
        Next::Ready(Ready {
            data: u.data,
            records,
            first_source_offset: u.base_offset,
            next_source_offset: u.next_source_offset,
            leader_epoch: u.leader_epoch,
            source_runs: Vec::new(),
            permits: u.permit.into_iter().collect(),
        })
    }

    fn rebuild(
        &self,
        run: Vec<Unit>,
        codec: i16,
        parts: usize,
        forward_records: Option<i32>,
    ) -> Next {
        Next::Rebuild(Rebuild {
            run,
            codec,
            parts,
            forward_records,
            skip_below: self.skip_below,
            batch_bytes: self.batch_bytes,
        })
    }

    /// Batches under this size are merged with the small ones behind them.
    fn small_limit(&self, merge_small: bool) -> usize {
        if merge_small {
            self.batch_bytes / 8
        } else {
            TINY_BATCH_BYTES.min(self.batch_bytes / 8)
        }
    }

    /// `first`, a small batch ([`Batcher::small_limit`]), and the small batches of its codec
    /// waiting behind it, up to `batch_bytes` in all.
    fn take_run(&mut self, first: Unit, kind: i16, merge_small: bool) -> Vec<Unit> {
        let limit = self.small_limit(merge_small);
        let small = |len: usize| len < limit;
        let verified = |data: &[u8]| {
            BatchView::parse(data, 0)
                .is_ok_and(|b| b.attributes() & ATTR_CODEC == kind && b.verify_crc().is_ok())
        };
        let mut run = vec![first];
        // Every batch of a merged run has its CRC verified here, the first one once a
        // second joins it.
        let mut first_verified = false;
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
        run
    }
}

/// What [`Batcher::next`] gives.
pub enum Next {
    /// No batch waits.
    Empty,
    Ready(Ready),
    Rebuild(Rebuild),
}

#[cfg(test)]
mod tests;
