//! Fetch with a `last_fetched_epoch` (v12+, KIP-320; Partition.readRecords): the leader
//! compares the fetch offset with the end of that epoch in its own history
//! (LeaderEpochFileCache.endOffsetFor) and answers a fetcher whose log diverged with the
//! diverging epoch instead of records. Three nodes, so that epochs move.

use kafka_protocol::messages::fetch_response::PartitionData;
use kmirror_wire::messenger::Messenger;

use crate::common;
use crate::harness::{Ctx, Got, Row};
use crate::multinode::{connect_node, metadata, move_leader, produce, setup, three_nodes};
use crate::multinode_row as row;

const OFFSET_OUT_OF_RANGE: i16 = 1;

/// A v12 Fetch from `offset` with `last_fetched_epoch`, waiting up to `max_wait_ms` for a
/// byte.
async fn fetch_after(
    m: &Messenger,
    topic: &str,
    (offset, last_fetched_epoch): (i64, i32),
    max_wait_ms: i32,
) -> Result<PartitionData, Got> {
    let mut req = common::fetch_request(topic, 0, offset, max_wait_ms, 1 << 20);
    req.topics[0].partitions[0].last_fetched_epoch = last_fetched_epoch;
    let mut resp = m.send_at(&req, 12).await.map_err(|_| Got::Closed)?;
    Ok(resp.responses.remove(0).partitions.remove(0))
}

/// Offsets 0-2 written at the first epoch, the leader moved, offsets 3-5 written at the
/// second; returns the new leader and both epochs.
async fn two_epochs(ctx: &Ctx) -> (String, Messenger, i32, i32) {
    let s = setup(ctx).await;
    produce(&s.leader, &s.topic, 9).await.ok();
    let (leader, epoch) = move_leader(ctx, &s.topic, (s.leader_id + 1) % 3).await;
    let md = metadata(&ctx.m, &s.topic).await;
    let new_leader = connect_node(&md, leader).await;
    produce(&new_leader, &s.topic, 9).await.ok();
    (s.topic, new_leader, s.epoch, epoch)
}

/// 0 when the answer is `code` with the diverging epoch `diverging` and no records.
fn expect(got: Result<PartitionData, Got>, code: i16, diverging: (i32, i64)) -> Got {
    let p = match got {
        Ok(p) => p,
        Err(g) => return g,
    };
    let d = (p.diverging_epoch.epoch, p.diverging_epoch.end_offset);
    let records = p.records.as_ref().map_or(0, |r| r.len());
    let empty = diverging == (-1, -1) || records == 0;
    if p.error_code == code && d == diverging && empty {
        Got::Code(0)
    } else {
        eprintln!(
            "code {}, diverging {d:?}, {records} record bytes",
            p.error_code
        );
        Got::Code(-1)
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("Fetch v12 whose last_fetched_epoch ends at or past the fetch offset is served",
            "Partition.readRecords lastFetchedEpoch", Got::Code(0), |ctx| {
            let (topic, leader, first, _) = two_epochs(&ctx).await;
            // The first epoch ends at 3 on the leader: a fetcher at 3 that read it is in step.
            let got = fetch_after(&leader, &topic, (3, first), 0).await;
            let served = got.as_ref().is_ok_and(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()));
            match expect(got, 0, (-1, -1)) {
                Got::Code(0) if served => Got::Code(0),
                other => other,
            }
        }),
        row!("Fetch v12 past the end of its last_fetched_epoch gets that epoch's end, no records",
            "Partition.readRecords divergingEpoch", Got::Code(0), |ctx| {
            // The fetcher says it read offsets up to 5 at the first epoch; the leader's first
            // epoch ended at 3, so its log diverged from the fetcher's from 3 on.
            let (topic, leader, first, _) = two_epochs(&ctx).await;
            expect(fetch_after(&leader, &topic, (5, first), 0).await, 0, (first, 3))
        }),
        row!("Fetch v12 long poll past the end of its last_fetched_epoch: the diverging epoch at once, not after max_wait_ms",
            "ReplicaManager.fetchMessages (hasDivergingEpoch)", Got::Code(0), |ctx| {
            let (topic, leader, first, _) = two_epochs(&ctx).await;
            expect(fetch_after(&leader, &topic, (5, first), 600_000).await, 0, (first, 3))
        }),
        row!("Fetch v12 with a last_fetched_epoch newer than any the leader has: OFFSET_OUT_OF_RANGE",
            "Partition.readRecords (UNDEFINED_EPOCH_OFFSET)", Got::Code(0), |ctx| {
            let (topic, leader, _, second) = two_epochs(&ctx).await;
            expect(fetch_after(&leader, &topic, (6, second + 5), 0).await, OFFSET_OUT_OF_RANGE, (-1, -1))
        }),
        row!("Fetch v12 at the latest epoch is served up to the log end",
            "LeaderEpochFileCache.endOffsetFor (latest epoch: the log end)", Got::Code(0), |ctx| {
            let (topic, leader, _, second) = two_epochs(&ctx).await;
            expect(fetch_after(&leader, &topic, (6, second), 0).await, 0, (-1, -1))
        }),
    ]
}
