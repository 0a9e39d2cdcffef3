//! Per-partition transaction state, kept from the batches appended: which producers have a
//! transaction open in the partition (the first offset of each bounds the last stable
//! offset) and the aborted transactions (Kafka's transaction index, `.txnindex`), which
//! read_committed fetches are answered with.
//!
//! Kafka: ProducerStateManager (ongoingTxns, firstUnstableOffset), ProducerAppendInfo
//! (appendEndTxnMarker: a marker completes the producer's open transaction; one for a
//! producer with nothing open here records nothing), LogSegment.updateTxnIndex (only
//! aborts are indexed) and UnifiedLog.collectAbortedTransactions.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use kmirror_wire::batch::BatchView;

/// Control record type of an abort marker (Kafka: ControlRecordType.ABORT).
pub const ABORT: i16 = 0;
/// Control record type of a commit marker (Kafka: ControlRecordType.COMMIT).
pub const COMMIT: i16 = 1;

/// One aborted transaction of a partition, as Fetch answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// The transactions of one partition. Kept inside the partition's producer state, under
/// its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionTxns {
    /// Producer id -> offset of the first batch of its open transaction.
    ongoing: HashMap<i64, i64>,
    /// Aborted transactions in marker order (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
}

impl PartitionTxns {
    pub(crate) fn from_parts(ongoing: HashMap<i64, i64>, aborted: Vec<AbortedTxn>) -> Self {
        Self { ongoing, aborted }
    }

    /// Applies an appended batch (with its assigned offsets), in offset order.
    pub fn on_batch(&mut self, batch: &BatchView<'_>) {
        if !batch.is_transactional() {
            return;
        }
        let pid = batch.producer_id();
        if !batch.is_control() {
            self.ongoing.entry(pid).or_insert(batch.base_offset());
            return;
        }
        // A marker for a producer with nothing open here records nothing.
        let Some(first_offset) = self.ongoing.remove(&pid) else {
            return;
        };
        if control_type(batch) == Some(ABORT) {
            self.aborted.push(AbortedTxn {
                producer_id: pid,
                first_offset,
                last_offset: batch.base_offset(),
            });
        }
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn is_ongoing(&self, producer_id: i64) -> bool {
        self.ongoing.contains_key(&producer_id)
    }

    /// The first offset of `producer_id`'s open transaction in this partition.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// The open transactions: (producer id, first offset), by first offset.
    pub fn ongoing(&self) -> Vec<(i64, i64)> {
        let mut open: Vec<(i64, i64)> = self.ongoing.iter().map(|(p, o)| (*p, *o)).collect();
        open.sort_unstable_by_key(|(pid, first)| (*first, *pid));
        open
    }

    /// Every aborted transaction held, in marker order.
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    /// The last stable offset of a log whose high watermark is `high_watermark`: the first
    /// offset of the oldest open transaction, or the high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.ongoing
            .values()
            .copied()
            .min()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` must name:
    /// those ending at or after `from` and starting before `upper`, in marker order.
    /// Kafka: UnifiedLog.collectAbortedTransactions (TransactionIndex.collectAbortedTxns).
    pub fn aborted_in(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < upper)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions that ended below the log start offset (their batches
    /// are gone). Kafka deletes a segment's transaction index with the segment.
    pub fn forget_below(&mut self, log_start_offset: i64) {
        let gone = self
            .aborted
            .partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..gone);
    }

    pub fn clear(&mut self) {
        self.ongoing.clear();
        self.aborted.clear();
    }
}

/// The type of a control batch's marker (its one record's key: version i16, type i16),
/// read with kafka-protocol's record decoder. `None` for a batch that does not decode.
pub fn control_type(batch: &BatchView<'_>) -> Option<i16> {
    let key = control_record(batch)?.key?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

/// The coordinator epoch a transaction marker carries (its one record's value: version
/// i16, coordinator epoch i32; Kafka: EndTransactionMarker). `None` for a batch that does
/// not decode.
pub fn marker_coordinator_epoch(batch: &BatchView<'_>) -> Option<i32> {
    let value = control_record(batch)?.value?;
    let bytes: [u8; 4] = value.get(2..6)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// The one record of a control batch, read with kafka-protocol's record decoder.
fn control_record(batch: &BatchView<'_>) -> Option<kafka_protocol::records::Record> {
    let mut bytes = Bytes::copy_from_slice(batch.as_bytes());
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transactions::markers::marker_batch;

    fn data(pid: i64, base: i64) -> Vec<u8> {
        let mut raw = crate::producers::testutil::batch(pid, 0, 0, 2, 0, 1);
        let attrs = kmirror_wire::batch::attributes(0, false, true);
        raw[21..23].copy_from_slice(&attrs.to_be_bytes());
        kmirror_wire::batch::update_crc(&mut raw);
        kmirror_wire::batch::set_base_offset(&mut raw, base);
        raw
    }

    fn marker(pid: i64, kind: i16, at: i64) -> Vec<u8> {
        let mut raw = marker_batch(pid, 0, kind, 1).to_vec();
        kmirror_wire::batch::set_base_offset(&mut raw, at);
        raw
    }

    fn apply(t: &mut PartitionTxns, raw: &[u8]) {
        t.on_batch(&BatchView::parse(raw, 0).unwrap());
    }

    #[test]
    fn open_transactions_bound_the_last_stable_offset_until_their_markers() {
        let mut t = PartitionTxns::default();
        apply(&mut t, &data(7, 0));
        apply(&mut t, &data(8, 2));
        apply(&mut t, &data(7, 4));
        assert_eq!(t.last_stable_offset(6), 0);
        apply(&mut t, &marker(7, COMMIT, 6));
        assert_eq!(t.last_stable_offset(7), 2);
        apply(&mut t, &marker(8, ABORT, 7));
        assert_eq!(t.last_stable_offset(8), 8);
        assert_eq!(
            t.aborted(),
            &[AbortedTxn {
                producer_id: 8,
                first_offset: 2,
                last_offset: 7
            }]
        );
    }

    #[test]
    fn a_fetch_names_the_aborted_transactions_overlapping_its_range() {
        let mut t = PartitionTxns::default();
        apply(&mut t, &data(1, 0));
        apply(&mut t, &marker(1, ABORT, 2));
        apply(&mut t, &data(2, 3));
        apply(&mut t, &marker(2, ABORT, 5));
        // An abort for a producer with nothing open here is not indexed.
        apply(&mut t, &marker(3, ABORT, 6));
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(t.aborted_in(0, 3)), [1]);
        assert_eq!(pids(t.aborted_in(3, 7)), [2]);
        assert_eq!(pids(t.aborted_in(2, 4)), [1, 2]);
        assert_eq!(pids(t.aborted_in(6, 9)), Vec::<i64>::new());
        t.forget_below(3);
        assert_eq!(pids(t.aborted_in(0, 9)), [2]);
    }

    #[test]
    fn markers_are_read_from_their_control_record() {
        for kind in [ABORT, COMMIT] {
            let raw = marker(5, kind, 0);
            assert_eq!(
                control_type(&BatchView::parse(&raw, 0).unwrap()),
                Some(kind)
            );
        }
    }
}
