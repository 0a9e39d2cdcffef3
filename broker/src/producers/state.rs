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
    /// Control batches (transaction markers) only move the epoch, as in Kafka.
    fn apply(&mut self, batch: &BatchView<'_>, now_ms: i64) {
        if batch.producer_epoch() != self.epoch {
            self.epoch = batch.producer_epoch();
            self.batches.clear();
        }
        if !batch.is_control() {
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
        }
    }

    pub(crate) fn from_entries(producers: HashMap<i64, ProducerEntry>, expiration_ms: i64) -> Self {
        Self {
            producers,
            expiration_ms,
            last_sweep_ms: i64::MIN,
        }
    }

    pub fn expiration_ms(&self) -> i64 {
        self.expiration_ms
    }

    pub fn set_expiration_ms(&mut self, expiration_ms: i64) {
        self.expiration_ms = expiration_ms;
    }

    fn is_expired(&self, entry: &ProducerEntry, now_ms: i64) -> bool {
        now_ms.saturating_sub(entry.last_update_ms) >= self.expiration_ms
    }

    /// The live (not expired) state of `producer_id`.
    pub fn entry(&self, producer_id: i64, now_ms: i64) -> Option<&ProducerEntry> {
        self.producers
            .get(&producer_id)
            .filter(|e| !self.is_expired(e, now_ms))
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
            return;
        }
        self.maybe_sweep(now_ms);
        let expiration_ms = self.expiration_ms;
        let entry = self
            .producers
            .entry(pid)
            .or_insert_with(|| ProducerEntry::new(batch.producer_epoch(), now_ms));
        if now_ms.saturating_sub(entry.last_update_ms) >= expiration_ms {
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

    /// Forgets every producer idle for `producer.id.expiration.ms`. Returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let expiration_ms = self.expiration_ms;
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_update_ms) < expiration_ms);
        self.last_sweep_ms = now_ms;
        before - self.producers.len()
    }

    fn maybe_sweep(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_sweep_ms) >= SWEEP_INTERVAL_MS.min(self.expiration_ms) {
            self.expire(now_ms);
        }
    }

    /// Forgets producers whose last batch lies entirely below the new log start offset
    /// (retention, DeleteRecords), as Kafka's `ProducerStateManager.truncateHead`. Such a
    /// producer then gets "no state" semantics.
    pub fn truncate_head(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }

    /// Forgets everything (log truncated to empty, topic recreated).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
mod tests {
    use kmirror_wire::batch::set_base_offset;

    use super::super::testutil::{batch, view};
    use super::*;

    const NOW: i64 = 1_000_000;
    const OOO: i16 = 45;
    const BAD_EPOCH: i16 = 47;

    /// A partition with a log end offset, driven like the produce path: check, "append"
    /// (assign the offset), record.
    struct Partition {
        state: PartitionProducerState,
        log_end: i64,
        log: Vec<Vec<u8>>,
    }

    impl Partition {
        fn new() -> Self {
            Self {
                state: PartitionProducerState::default(),
                log_end: 0,
                log: Vec::new(),
            }
        }

        fn produce(&mut self, pid: i64, epoch: i16, seq: i32, count: i32) -> Result<Check, i16> {
            let raw = batch(pid, epoch, seq, count, 0, NOW + self.log_end);
            let check = self.state.check(&view(&raw), NOW)?;
            if check == Check::Append {
                let mut raw = raw;
                set_base_offset(&mut raw, self.log_end);
                self.state.record(&view(&raw), NOW);
                self.log_end += i64::from(count);
                self.log.push(raw);
            }
            Ok(check)
        }
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(0, 4), 4);
        assert_eq!(increment_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX - 1, 2), 0);
        assert_eq!(increment_sequence(i32::MAX, 3), 2);
        assert!(in_sequence(4, 5));
        assert!(in_sequence(i32::MAX, 0));
        assert!(!in_sequence(i32::MAX, i32::MIN));
        assert!(in_sequence(NO_SEQUENCE, 0));
    }

    #[test]
    fn in_order_batches_are_appended() {
        let mut p = Partition::new();
        assert_eq!(p.produce(7, 0, 0, 3), Ok(Check::Append));
        assert_eq!(p.produce(7, 0, 3, 2), Ok(Check::Append));
        assert_eq!(p.produce(7, 0, 5, 1), Ok(Check::Append));
        let e = p.state.entry(7, NOW).unwrap();
        assert_eq!((e.epoch, e.last_seq(), e.batches.len()), (0, 5, 3));
        assert_eq!(e.batches.back().unwrap().first_offset, 5);
    }

    #[test]
    fn each_of_the_last_five_batches_is_a_duplicate_but_not_the_sixth_oldest() {
        let mut p = Partition::new();
        for i in 0..6 {
            assert_eq!(p.produce(7, 0, i * 2, 2), Ok(Check::Append));
        }
        assert_eq!(p.log_end, 12);
        for i in 1..6 {
            let expected = Check::Duplicate {
                base_offset: i64::from(i) * 2,
                last_offset: i64::from(i) * 2 + 1,
                timestamp: NOW + i64::from(i) * 2,
            };
            assert_eq!(p.produce(7, 0, i * 2, 2), Ok(expected), "batch {i}");
        }
        assert_eq!(p.log_end, 12, "duplicates are not appended");
        // The oldest batch fell out of the cache: now it is just out of order.
        assert_eq!(p.produce(7, 0, 0, 2), Err(OOO));
        // Same first sequence but a different last one is not a duplicate either.
        assert_eq!(p.produce(7, 0, 10, 1), Err(OOO));
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut p = Partition::new();
        p.produce(7, 0, 0, 3).unwrap();
        assert_eq!(p.produce(7, 0, 4, 1), Err(OOO));
        assert_eq!(p.produce(7, 0, 2, 1), Err(OOO));
        assert_eq!(p.produce(7, 0, 3, 1), Ok(Check::Append));
    }

    #[test]
    fn a_stale_epoch_is_invalid_producer_epoch() {
        let mut p = Partition::new();
        p.produce(7, 2, 0, 1).unwrap();
        assert_eq!(p.produce(7, 1, 1, 1), Err(BAD_EPOCH));
        assert_eq!(p.produce(7, 1, 0, 1), Err(BAD_EPOCH));
    }

    #[test]
    fn a_new_epoch_starting_at_0_is_accepted_and_clears_the_cache() {
        let mut p = Partition::new();
        p.produce(7, 0, 0, 2).unwrap();
        p.produce(7, 0, 2, 2).unwrap();
        assert_eq!(p.produce(7, 1, 0, 1), Ok(Check::Append));
        let e = p.state.entry(7, NOW).unwrap();
        assert_eq!((e.epoch, e.batches.len()), (1, 1));
        // A retry from the old epoch is fenced, not a duplicate.
        assert_eq!(p.produce(7, 0, 2, 2), Err(BAD_EPOCH));
        assert_eq!(
            p.produce(7, 1, 0, 1),
            Ok(Check::Duplicate {
                base_offset: 4,
                last_offset: 4,
                timestamp: NOW + 4
            })
        );
    }

    #[test]
    fn a_new_epoch_not_starting_at_0_is_out_of_order() {
        let mut p = Partition::new();
        p.produce(7, 0, 0, 2).unwrap();
        assert_eq!(p.produce(7, 1, 2, 1), Err(OOO));
        assert_eq!(p.produce(7, 1, 5, 1), Err(OOO));
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        let mut p = Partition::new();
        assert_eq!(p.produce(7, 3, 12_345, 2), Ok(Check::Append));
        assert_eq!(p.produce(8, 0, 99, 1), Ok(Check::Append));
        assert_eq!(p.produce(7, 3, 12_347, 1), Ok(Check::Append));
        assert_eq!(p.produce(7, 3, 12_349, 1), Err(OOO));
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_0() {
        let mut p = Partition::new();
        p.produce(7, 0, i32::MAX - 1, 2).unwrap();
        assert_eq!(p.state.entry(7, NOW).unwrap().last_seq(), i32::MAX);
        assert_eq!(p.produce(7, 0, 0, 3), Ok(Check::Append));
        // A batch that itself crosses the wrap.
        let mut p = Partition::new();
        p.produce(7, 0, i32::MAX - 1, 4).unwrap();
        assert_eq!(p.state.entry(7, NOW).unwrap().last_seq(), 1);
        assert!(matches!(
            p.produce(7, 0, i32::MAX - 1, 4),
            Ok(Check::Duplicate { base_offset: 0, .. })
        ));
        assert_eq!(p.produce(7, 0, 0, 1), Err(OOO));
        assert_eq!(p.produce(7, 0, 2, 1), Ok(Check::Append));
    }

    #[test]
    fn producer_id_minus_one_is_never_checked_or_recorded() {
        let mut p = Partition::new();
        for seq in [-1, 5, 5, 0] {
            assert_eq!(p.produce(-1, -1, seq, 2), Ok(Check::Append));
        }
        assert!(p.state.is_empty());
        assert_eq!(p.log_end, 8);
    }

    #[test]
    fn idle_producers_expire() {
        let mut state = PartitionProducerState::new(1_000);
        let mut raw = batch(7, 0, 0, 2, 0, 1);
        set_base_offset(&mut raw, 10);
        state.record(&view(&raw), NOW);
        let gap = batch(7, 0, 5, 1, 0, 1);
        assert_eq!(state.check(&view(&gap), NOW + 999), Err(OOO));
        // Expired: no state, any sequence, and no duplicate detection.
        assert_eq!(state.check(&view(&gap), NOW + 1_000), Ok(Check::Append));
        assert_eq!(state.check(&view(&raw), NOW + 1_000), Ok(Check::Append));
        // Recording after expiry starts over.
        state.record(&view(&gap), NOW + 1_000);
        assert_eq!(state.entry(7, NOW + 1_000).unwrap().batches.len(), 1);
        assert_eq!(state.expire(NOW + 1_999), 0);
        assert_eq!(state.expire(NOW + 2_000), 1);
        assert!(state.is_empty());
    }

    #[test]
    fn record_sweeps_expired_producers_lazily() {
        let mut state = PartitionProducerState::new(1_000);
        state.record(&view(&batch(1, 0, 0, 1, 0, 1)), NOW);
        state.record(&view(&batch(2, 0, 0, 1, 0, 1)), NOW + 1_500);
        assert_eq!(state.len(), 1);
        assert!(state.entry(2, NOW + 1_500).is_some());
    }

    #[test]
    fn truncate_head_forgets_producers_below_the_log_start() {
        let mut p = Partition::new();
        p.produce(1, 0, 0, 5).unwrap(); // offsets 0..=4
        p.produce(2, 0, 0, 5).unwrap(); // offsets 5..=9
        p.state.truncate_head(5);
        assert!(p.state.entry(1, NOW).is_none());
        assert!(p.state.entry(2, NOW).is_some());
        assert_eq!(p.produce(1, 0, 77, 1), Ok(Check::Append));
    }

    #[test]
    fn a_control_batch_moves_the_epoch_without_caching_a_sequence() {
        let mut state = PartitionProducerState::default();
        state.record(&view(&batch(7, 0, 0, 2, 0, 1)), NOW);
        let mut marker = batch(7, 1, NO_SEQUENCE, 1, 2, 1);
        marker[21..23].copy_from_slice(&0x30i16.to_be_bytes()); // transactional | control
        let crc = crc32c::crc32c(&marker[21..]);
        marker[17..21].copy_from_slice(&crc.to_be_bytes());
        state.record(&view(&marker), NOW);
        let e = state.entry(7, NOW).unwrap();
        assert_eq!((e.epoch, e.batches.len()), (1, 0));
        assert_eq!(state.check(&view(&batch(7, 1, 3, 1, 0, 1)), NOW), Err(OOO));
        assert_eq!(
            state.check(&view(&batch(7, 1, 0, 1, 0, 1)), NOW),
            Ok(Check::Append)
        );
    }

    #[test]
    fn rebuilt_state_detects_a_retry_after_restart() {
        let mut p = Partition::new();
        p.produce(-1, -1, -1, 3).unwrap();
        for i in 0..8 {
            p.produce(7, 0, i * 3, 3).unwrap();
            p.produce(8, 2, i, 1).unwrap();
        }
        p.produce(7, 1, 0, 2).unwrap();
        // "Restart": a new state from the log, in offset order.
        let mut rebuilt = PartitionProducerState::default();
        for raw in &p.log {
            rebuilt.rebuild_from(&view(raw), NOW + 5);
        }
        for pid in [7, 8] {
            assert_eq!(
                rebuilt.entry(pid, NOW),
                p.state
                    .entry(pid, NOW)
                    .map(|e| {
                        let mut e = e.clone();
                        e.last_update_ms = NOW + 5;
                        e
                    })
                    .as_ref()
            );
        }
        let retry = batch(8, 2, 7, 1, 0, 1);
        let original = p
            .log
            .iter()
            .map(|r| view(r))
            .find(|b| b.producer_id() == 8 && b.base_sequence() == 7)
            .unwrap();
        assert_eq!(
            rebuilt.check(&view(&retry), NOW + 6),
            Ok(Check::Duplicate {
                base_offset: original.base_offset(),
                last_offset: original.last_offset(),
                timestamp: original.max_timestamp()
            })
        );
        let retry = batch(7, 1, 0, 2, 0, 1);
        assert!(matches!(
            rebuilt.check(&view(&retry), NOW + 6),
            Ok(Check::Duplicate { .. })
        ));
        assert_eq!(
            rebuilt.check(&view(&batch(7, 1, 2, 1, 0, 1)), NOW + 6),
            Ok(Check::Append)
        );
        assert_eq!(
            rebuilt.check(&view(&batch(7, 0, 24, 1, 0, 1)), NOW + 6),
            Err(BAD_EPOCH)
        );
    }
}
