//! Per-partition producer state: sequence validation and duplicate detection.
//!
//! Follows Kafka's `ProducerAppendInfo` / `ProducerStateEntry` for batches coming from
//! clients. Validation order for a batch with a producer id:
//! 1. Same epoch and one of the last [`NUM_BATCHES_TO_RETAIN`] batches has exactly the same
//!    first and last sequence: a retried duplicate. Answer success with the original
//!    offsets; do not append.
//! 2. Epoch below the current one: INVALID_PRODUCER_EPOCH.
//! 3. Epoch above the current one: the first sequence must be 0, else
//!    OUT_OF_ORDER_SEQUENCE_NUMBER. The new epoch clears the batch cache.
//! 4. Same epoch: the first sequence must follow the last one (wrapping from `i32::MAX` to
//!    0), else OUT_OF_ORDER_SEQUENCE_NUMBER.
//! 5. No state for the producer (never seen, expired, or removed with the log head): any
//!    sequence is accepted.
//!
//! Batches with `producerId = -1` are never checked or recorded.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use kmirror_wire::batch::BatchView;

use super::txn::PartitionTxns;
use super::{NO_PRODUCER_EPOCH, NO_SEQUENCE, NUM_BATCHES_TO_RETAIN};

/// How often (at most) `record` sweeps expired producers out of memory.
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// What is remembered of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's `maxTimestamp` as stored (the append time for LogAppendTime topics).
    pub timestamp: i64,
}

/// One producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// The last batches of `epoch`, oldest first, at most [`NUM_BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    /// Wall-clock time of the last append (or of the rebuild), for expiration.
    pub last_update_ms: i64,
    /// The coordinator epoch of the producer's last transaction marker here, -1 before
    /// any (Kafka: ProducerStateEntry.coordinatorEpoch, shown by DescribeProducers).
    pub coordinator_epoch: i32,
    /// The timestamp of its last batch here, data or marker, -1 before any (Kafka:
    /// ProducerStateEntry.lastTimestamp).
    pub last_timestamp: i64,
}

/// The outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append the batch, then [`PartitionProducerState::record`] it.
    Append,
    /// A retry of a batch already in the log: answer success with these offsets and the
    /// batch's stored timestamp, and append nothing.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
        timestamp: i64,
    },
}

/// `baseSequence + lastOffsetDelta`, wrapping past `i32::MAX` to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub fn last_sequence(batch: &BatchView<'_>) -> i32 {
    increment_sequence(batch.base_sequence(), batch.last_offset_delta())
}

fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let (seq, inc, max) = (
        i64::from(sequence),
        i64::from(increment),
        i64::from(i32::MAX),
    );
    if seq > max - inc {
        (inc - (max - seq) - 1) as i32
    } else {
        (seq + inc) as i32
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> Self {
        Self {
            epoch,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
            last_update_ms: now_ms,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }

    /// Last sequence of the newest batch, or `NO_SEQUENCE`.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    fn find_duplicate(&self, batch: &BatchView<'_>) -> Option<&BatchMetadata> {
        if batch.producer_epoch() != self.epoch {
            return None;
        }
        let (first, last) = (batch.base_sequence(), last_sequence(batch));
        self.batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
    }

    /// Steps 2-4 of the validation order (the duplicate check is done by the caller).
    fn validate(&self, batch: &BatchView<'_>) -> Result<(), i16> {
        let epoch = batch.producer_epoch();
        let first = batch.base_sequence();
        if epoch < self.epoch {
            return Err(ResponseError::InvalidProducerEpoch.code());
        }
        if epoch > self.epoch {
            if first != 0 && self.epoch != NO_PRODUCER_EPOCH {
                return Err(ResponseError::OutOfOrderSequenceNumber.code());
            }
            return Ok(());
        }
        if self.epoch == NO_PRODUCER_EPOCH || in_sequence(self.last_seq(), first) {
            Ok(())
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber.code())
        }
    }

    /// Applies an appended batch: a new epoch clears the cache; data batches are cached.
    /// Control batches (transaction markers) only move the epoch and the coordinator
    /// epoch, as in Kafka (ProducerAppendInfo.appendEndTxnMarker).
    fn apply(&mut self, batch: &BatchView<'_>, now_ms: i64) {
        if batch.producer_epoch() != self.epoch {
            self.epoch = batch.producer_epoch();
            self.batches.clear();
        }
        self.last_timestamp = batch.max_timestamp();
        if batch.is_control() {
            if let Some(epoch) = super::txn::marker_coordinator_epoch(batch) {
                self.coordinator_epoch = epoch;
            }
        } else {
            if self.batches.len() == NUM_BATCHES_TO_RETAIN {
                self.batches.pop_front();
            }
            self.batches.push_back(BatchMetadata {
                first_seq: batch.base_sequence(),
                last_seq: last_sequence(batch),
                first_offset: batch.base_offset(),
                last_offset: batch.last_offset(),
                timestamp: batch.max_timestamp(),
            });
        }
        self.last_update_ms = now_ms;
    }
}

/// The producer state of one partition. Not internally synchronised: keep it under the
/// partition's lock, together with the log (see the module contract in `producers`).
#[derive(Debug, Clone)]
pub struct PartitionProducerState {
    producers: HashMap<i64, ProducerEntry>,
    expiration_ms: i64,
    last_sweep_ms: i64,
    /// Open and aborted transactions (kept whether or not their producers expire).
    pub txns: PartitionTxns,
}

impl Default for PartitionProducerState {
    fn default() -> Self {
        Self::new(super::DEFAULT_PRODUCER_ID_EXPIRATION_MS)
    }
}

impl PartitionProducerState {
    /// Empty state; producers idle for `expiration_ms` (`producer.id.expiration.ms`) are
    /// forgotten.
    pub fn new(expiration_ms: i64) -> Self {
        Self {
            producers: HashMap::new(),
            expiration_ms,
            last_sweep_ms: i64::MIN,
            txns: PartitionTxns::default(),
        }
    }

    pub(crate) fn from_entries(
        producers: HashMap<i64, ProducerEntry>,
        expiration_ms: i64,
        txns: PartitionTxns,
    ) -> Self {
        Self {
            producers,
            expiration_ms,
            last_sweep_ms: i64::MIN,
            txns,
        }
    }

    pub fn expiration_ms(&self) -> i64 {
        self.expiration_ms
    }

    pub fn set_expiration_ms(&mut self, expiration_ms: i64) {
        self.expiration_ms = expiration_ms;
    }

    /// Kafka: ProducerStateManager.isProducerExpired — never while the producer has a
    /// transaction open in the partition.
    fn is_expired(&self, producer_id: i64, entry: &ProducerEntry, now_ms: i64) -> bool {
        now_ms.saturating_sub(entry.last_update_ms) >= self.expiration_ms
            && !self.txns.is_ongoing(producer_id)
    }

    /// The live (not expired) state of `producer_id`.
    pub fn entry(&self, producer_id: i64, now_ms: i64) -> Option<&ProducerEntry> {
        self.producers
            .get(&producer_id)
            .filter(|e| !self.is_expired(producer_id, e, now_ms))
    }

    /// All entries held, expired or not (snapshots, DescribeProducers).
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(pid, e)| (*pid, e))
    }

    /// Number of producers held (including expired ones not swept yet).
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks the one batch of a produce request for this partition (Kafka allows exactly
    /// one per partition from Produce v3 on, see `handlers::produce::validate`) against
    /// the state; the state itself is not changed.
    ///
    /// A batch that duplicates a cached batch is a [`Check::Duplicate`] and is not
    /// appended (Kafka: `UnifiedLog.analyzeAndValidateProducerState`). A producer with no
    /// state may start at any sequence.
    ///
    /// Errors are Kafka error codes: INVALID_PRODUCER_EPOCH (47) or
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    pub fn check(&self, batch: &BatchView<'_>, now_ms: i64) -> Result<Check, i16> {
        let pid = batch.producer_id();
        if pid < 0 {
            return Ok(Check::Append);
        }
        let Some(committed) = self.entry(pid, now_ms) else {
            return Ok(Check::Append);
        };
        if let Some(dup) = committed.find_duplicate(batch) {
            return Ok(Check::Duplicate {
                base_offset: dup.first_offset,
                last_offset: dup.last_offset,
                timestamp: dup.timestamp,
            });
        }
        committed.validate(batch)?;
        Ok(Check::Append)
    }

    /// Records a batch that has been appended; `batch` must carry its assigned base offset
    /// (the buffer as patched by `PartitionLog::append`). Does not validate: call it only
    /// for batches that passed [`Self::check`] and were appended, in offset order.
    pub fn record(&mut self, batch: &BatchView<'_>, now_ms: i64) {
        let pid = batch.producer_id();
        if pid < 0 {
            // Never transactional: a transactional batch always has a producer id.
            return;
        }
        self.maybe_sweep(now_ms);
        let expired = self
            .producers
            .get(&pid)
            .is_some_and(|e| self.is_expired(pid, e, now_ms));
        self.txns.on_batch(batch);
        let entry = self
            .producers
            .entry(pid)
            .or_insert_with(|| ProducerEntry::new(batch.producer_epoch(), now_ms));
        if expired {
            *entry = ProducerEntry::new(batch.producer_epoch(), now_ms);
        }
        entry.apply(batch, now_ms);
    }

    /// Replays one batch of the log on start (in offset order, from the snapshot offset or
    /// the start of the scanned tail). No validation, like Kafka's recovery. Expiration is
    /// counted from `now_ms` (the start time), not from the batch timestamps, which may be
    /// arbitrary for CreateTime topics.
    pub fn rebuild_from(&mut self, batch: &BatchView<'_>, now_ms: i64) {
        self.record(batch, now_ms);
    }

    /// Forgets every producer idle for `producer.id.expiration.ms` without a transaction
    /// open here. Returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let expiration_ms = self.expiration_ms;
        let txns = &self.txns;
        self.producers.retain(|pid, e| {
            now_ms.saturating_sub(e.last_update_ms) < expiration_ms || txns.is_ongoing(*pid)
        });
        self.last_sweep_ms = now_ms;
        before - self.producers.len()
    }

    fn maybe_sweep(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_sweep_ms) >= SWEEP_INTERVAL_MS.min(self.expiration_ms) {
            self.expire(now_ms);
        }
    }

    /// Forgets everything (log truncated to empty, topic recreated).
    pub fn clear(&mut self) {
        self.producers.clear();
        self.txns.clear();
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
