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
