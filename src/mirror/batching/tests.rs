//! Tests of [`super`]: forwarding, merging, memory charges and positions.

use super::*;
use crate::mirror::memory::{Held, Memory};
use bytes::Bytes;
use kafka_protocol::records::Compression;

/// The batcher as the pipeline drives it ([`crate::mirror::pipeline::next_batch`]).
trait NextBatch {
    fn next_batch(&mut self, merge_small: bool) -> Result<Option<Ready>, ShapeError>;
}

impl NextBatch for Batcher {
    fn next_batch(&mut self, merge_small: bool) -> Result<Option<Ready>, ShapeError> {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
        }
        RUNTIME.with(|rt| rt.block_on(crate::mirror::pipeline::next_batch(self, merge_small)))
    }
}

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
fn a_batch_as_large_as_one_the_target_refused_is_split_before_it_is_sent() {
    let big = batch(0, 100, 1_000);
    let mut q = Batcher::new(1 << 20, 0);
    q.push(chunk(std::slice::from_ref(&big), 100)).unwrap();
    q.push(chunk(&[batch(100, 1, 10)], 101)).unwrap();
    q.target_refused(big.len() / 2);
    let mut parts = Vec::new();
    while let Some(r) = q.next_batch(false).unwrap() {
        parts.push(r);
    }
    let (tail, parts) = parts.split_last().unwrap();
    assert_eq!(
        (tail.first_source_offset, tail.next_source_offset),
        (100, 101)
    );
    assert!(parts.len() >= 4, "{} parts", parts.len());
    let mut next = 0;
    for p in parts {
        assert!(
            p.data.len() < big.len() / 4 + 100,
            "a part of {} bytes",
            p.data.len()
        );
        BatchView::parse(&p.data, 0)
            .unwrap()
            .validate_for_append()
            .unwrap();
        assert_eq!(p.first_source_offset, next);
        assert!(p.source_runs.is_empty());
        next += i64::from(p.records);
        assert_eq!(p.next_source_offset, next);
    }
    assert_eq!(next, 100);
}

/// A refusal older than FORGET_REFUSAL_AFTER no longer splits or caps anything, so a limit
/// raised on the target topic is used without a restart; a recent one still does.
#[test]
fn a_refusal_is_forgotten_after_a_while() {
    let first = batch(0, 100, 1_000);
    let small: Vec<Bytes> = (0..10).map(|i| batch(100 + i * 3, 3, 50)).collect();
    let refused_bytes = first.len() / 2;
    let long_ago = Instant::now()
        .checked_sub(FORGET_REFUSAL_AFTER)
        .expect("the clock runs longer than that");
    for (refused_at, forgotten) in [(Instant::now(), false), (long_ago, true)] {
        let mut q = Batcher::new(1 << 20, 0);
        q.push(chunk(std::slice::from_ref(&first), 100)).unwrap();
        q.push(chunk(&small, 130)).unwrap();
        q.target_refused_at(refused_bytes, refused_at);
        let mut sent = Vec::new();
        while let Some(r) = q.next_batch(true).unwrap() {
            sent.push((r.records, r.data.len()));
        }
        assert_eq!(q.refused_bytes().is_none(), forgotten);
        if forgotten {
            // All 130 records in one batch, as the flow's batch_bytes allows.
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0].0, 130);
        } else {
            assert!(sent.len() >= 3, "{sent:?}");
            assert!(sent.iter().all(|(_, len)| *len < refused_bytes), "{sent:?}");
        }
    }
}

#[test]
fn a_capped_batcher_merges_no_more_than_its_cap() {
    let small: Vec<Bytes> = (0..40).map(|i| batch(i * 3, 3, 50)).collect();
    let each = small[0].len();
    let mut q = Batcher::new(1 << 20, 0);
    q.push(chunk(&small, 120)).unwrap();
    q.target_refused(20 * each);
    let mut merged = 0;
    while let Some(r) = q.next_batch(true).unwrap() {
        if r.records > 0 {
            assert!(
                r.records <= 30,
                "{} records from at most 10 batches",
                r.records
            );
            merged += 1;
        }
    }
    assert!(merged >= 4, "{merged} merged batches");
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

/// Twenty batches of 60 records, an hour apart: merged, they outgrow their own size.
fn hour_apart_batches() -> Vec<Bytes> {
    (0..20i64)
        .map(|b| {
            let records: Vec<_> = (0..60)
                .map(|i| {
                    kmirror_wire::records::record(
                        b * 60 + i,
                        1_000 + b * 3_600_000,
                        None,
                        Some(Bytes::from_static(b"v")),
                    )
                })
                .collect();
            kmirror_wire::records::encode(&records, Compression::None).unwrap()
        })
        .collect()
}

/// A merged run can come out larger than its sources: against one base, its records'
/// offset and timestamp deltas take longer varints than in their own batches (here the
/// sources are an hour apart). One over `batch_bytes` is split, so every batch sent fits
/// and every record goes out once, in order.
#[test]
fn a_merge_that_would_outgrow_batch_bytes_is_split() {
    let sources = hour_apart_batches();
    let batch_bytes: usize = sources.iter().map(Bytes::len).sum();
    let mut q = Batcher::new(batch_bytes, 0);
    q.push(chunk(&sources, 1200)).unwrap();
    let (mut next, mut sent) = (0, 0);
    while let Some(r) = q.next_batch(true).unwrap() {
        assert!(
            r.data.len() <= batch_bytes,
            "a batch of {} bytes, over batch_bytes {batch_bytes}",
            r.data.len()
        );
        BatchView::parse(&r.data, 0)
            .unwrap()
            .validate_for_append()
            .unwrap();
        assert_eq!(r.first_source_offset, next);
        next = r.next_source_offset;
        sent += 1;
    }
    assert_eq!(next, 1200);
    assert!(sent >= 2, "{sent} batches");
}

/// The half a split gives back still lives in the fetched buffer, so the batch rebuilt
/// from the first half neither takes the buffer's charge with it nor shrinks it; the
/// charge is released once the last batch of the buffer is acknowledged.
#[test]
fn a_split_merge_keeps_the_fetched_buffer_charged_until_its_last_batch_is_acked() {
    let sources = hour_apart_batches();
    let batch_bytes: usize = sources.iter().map(Bytes::len).sum();
    let (memory, held) = (Memory::new(1 << 20), Held::default());
    let c = charged_chunk(&sources, 1200, &memory, &held);
    let charged = c.data.len();
    let mut q = Batcher::new(batch_bytes, 0);
    q.push(c).unwrap();
    let first = q.next_batch(true).unwrap().unwrap();
    assert!(!q.is_empty(), "the merge was not split");
    assert_eq!(first.permits.len(), 1);
    assert_eq!(
        held.bytes(),
        charged,
        "the buffer's charge shrank while batches of it wait"
    );
    let mut sent = vec![first];
    while let Some(r) = q.next_batch(true).unwrap() {
        sent.push(r);
    }
    assert_eq!(sent.last().unwrap().next_source_offset, 1200);
    assert!(held.bytes() > 0, "charge released before the acks");
    drop(sent);
    assert_eq!(held.bytes(), 0);
    assert_eq!(memory.fetch_available(), memory.fetch_pool_bytes());
}
