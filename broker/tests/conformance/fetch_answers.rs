//! How Fetch answers read (ReplicaManager.readFromLog, KafkaApis.handleFetchRequest,
//! FetchManager.newContext): aborted transactions by isolation level, a failed read's
//! offsets, a partition's limit after the first partition with data, which fetches are
//! answered at once instead of waiting `max_wait_ms`, and sessions this broker never made.
//! Long polls here wait ten minutes, so a fetch that should be answered at once and is not
//! fails the row's time limit instead of passing late.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;

use crate::admin::{check, row};
use crate::common;
use crate::harness::{Ctx, Got, Row};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// Long enough that only an answer given at once passes a row.
const LONG_POLL_MS: i32 = 600_000;

/// A fetch of `partitions` ((index, offset, partition_max_bytes)) of `topic`.
fn fetch_of(topic: &str, partitions: &[(i32, i64, i32)]) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(common::name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(index, offset, limit)| {
                        FetchPartition::default()
                            .with_partition(index)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(limit)
                    })
                    .collect(),
            )])
}

/// A topic with `partitions` partitions, each holding one batch of three records.
async fn filled(ctx: &Ctx, name: &str, partitions: i32) -> Result<String, Got> {
    let topic = ctx.topic(name);
    common::create_topic(&ctx.m, &topic, partitions).await;
    for p in 0..partitions {
        let r = common::produce(&ctx.m, &topic, p, common::batch(3, 1_000)).await;
        if r.error_code != 0 {
            return Err(Got::Code(r.error_code));
        }
    }
    Ok(topic)
}

/// Fetch v12 at each isolation level: whether aborted transactions are null
/// (read_uncommitted) and an empty list (read_committed).
async fn aborted_by_isolation(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "iso", 1).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    let mut aborted = Vec::new();
    for isolation in [0, 1] {
        let req = fetch_of(&topic, &[(0, 0, 1 << 20)]).with_isolation_level(isolation);
        match ctx.m.send_at(&req, 12).await {
            Ok(r) => aborted.push(r.responses[0].partitions[0].aborted_transactions.clone()),
            Err(_) => return Got::Closed,
        }
    }
    check("aborted transactions", aborted, vec![None, Some(vec![])])
}

/// Fetch v12 past the log end: the error, and the offsets a failed read gives (-1).
async fn out_of_range_offsets(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "oor", 1).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    match ctx
        .m
        .send_at(&fetch_of(&topic, &[(0, 100, 1 << 20)]), 12)
        .await
    {
        Ok(r) => {
            let p = &r.responses[0].partitions[0];
            check(
                "(error, high watermark, last stable offset, log start offset)",
                (
                    p.error_code,
                    p.high_watermark,
                    p.last_stable_offset,
                    p.log_start_offset,
                ),
                (OFFSET_OUT_OF_RANGE, -1, -1, -1),
            )
        }
        Err(_) => Got::Closed,
    }
}

/// Each partition's (error, records sent, high watermark, aborted transactions null).
fn partition_answers(r: &FetchResponse) -> Vec<(i16, bool, i64, bool)> {
    r.responses[0]
        .partitions
        .iter()
        .map(|p| {
            let sent = p.records.as_ref().is_some_and(|b| !b.is_empty());
            (
                p.error_code,
                sent,
                p.high_watermark,
                p.aborted_transactions.is_none(),
            )
        })
        .collect()
}

/// Two partitions, each one batch, fetched at read_committed with a partition limit below
/// the batch's size: the first sends its batch (KIP-74), the second nothing, without an
/// error and, as a read Kafka replaced by MemoryRecords.EMPTY, without aborted
/// transactions.
async fn limit_after_the_first(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "limit", 2).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    let req = fetch_of(&topic, &[(0, 0, 10), (1, 0, 10)]).with_isolation_level(1);
    match ctx.ask(&req, 12).await {
        Ok(r) => check(
            "(error, records sent, high watermark, aborted null)",
            partition_answers(&r),
            vec![(0, true, 3, false), (0, false, 3, true)],
        ),
        Err(g) => g,
    }
}

/// One partition holding two batches, fetched with a limit 10 bytes above the first: Kafka
/// sends the segment's bytes up to the limit, the first batch and the start of the second,
/// which the client drops and fetches again.
async fn limit_cuts_a_batch(ctx: Ctx) -> Got {
    let topic = ctx.topic("cut");
    common::create_topic(&ctx.m, &topic, 1).await;
    for _ in 0..2 {
        let r = common::produce(&ctx.m, &topic, 0, common::batch(3, 1_000)).await;
        if r.error_code != 0 {
            return Got::Code(r.error_code);
        }
    }
    let first = common::batch(3, 1_000).len() as i32;
    match ctx.ask(&fetch_of(&topic, &[(0, 0, first + 10)]), 12).await {
        Ok(r) => {
            let records = r.responses[0].partitions[0]
                .records
                .clone()
                .unwrap_or_default();
            let mut batches = kmirror_wire::batch::Batches::new(&records);
            let whole = batches.by_ref().filter(|b| b.is_ok()).count();
            check(
                "(bytes sent, whole batches, cut batch after them)",
                (records.len() as i32, whole, batches.truncated_tail()),
                (first + 10, 1, true),
            )
        }
        Err(g) => g,
    }
}

/// The same two partitions as a long poll whose min_bytes only the bytes available reach,
/// each partition's counted up to its limit (0.6 of a batch each, so 1.2 batches, above
/// the one batch sent). Kafka answers at once (DelayedFetch.tryComplete).
async fn min_bytes_by_availability(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "avail", 2).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    let batch_bytes = match ctx.ask(&fetch_of(&topic, &[(0, 0, 1 << 20)]), 12).await {
        Ok(r) => r.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |b| b.len()) as i32,
        Err(g) => return g,
    };
    let limit = batch_bytes * 6 / 10;
    let req = fetch_of(&topic, &[(0, 0, limit), (1, 0, limit)])
        .with_max_wait_ms(LONG_POLL_MS)
        .with_min_bytes(2 * limit);
    match ctx.ask(&req, 12).await {
        Ok(r) => check(
            "(error, records sent, high watermark, aborted null)",
            partition_answers(&r),
            vec![(0, true, 3, true), (0, false, 3, true)],
        ),
        Err(g) => g,
    }
}

/// A long poll (one second) of a caught-up partition and one of a topic that does not
/// exist: Kafka answers the unknown one without a read, so it does not end the wait. Checks
/// that the answer took at least about max_wait_ms (a lower bound, which a slow machine
/// cannot break).
async fn unknown_partition_waits(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "waits", 1).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    let mut req = fetch_of(&topic, &[(0, 3, 1 << 20)]).with_max_wait_ms(1_000);
    req.topics.push(
        FetchTopic::default()
            .with_topic(common::name(&ctx.topic("missing")))
            .with_partitions(vec![FetchPartition::default().with_partition(0)]),
    );
    let started = std::time::Instant::now();
    match ctx.ask(&req, 12).await {
        Ok(r) => {
            let codes: Vec<i16> = r
                .responses
                .iter()
                .map(|t| t.partitions[0].error_code)
                .collect();
            let waited = started.elapsed() >= std::time::Duration::from_millis(900);
            check(
                "(codes, waited max_wait_ms)",
                (codes, waited),
                (vec![0, 3], true),
            )
        }
        Err(g) => g,
    }
}

/// A long poll whose `min_bytes` is above its `max_bytes`: Kafka takes max_bytes as the
/// minimum, so one batch (above max_bytes itself, KIP-74) answers it at once.
async fn min_bytes_capped(ctx: Ctx) -> Got {
    let topic = match filled(&ctx, "minmax", 1).await {
        Ok(t) => t,
        Err(g) => return g,
    };
    let req = fetch_of(&topic, &[(0, 0, 1 << 20)])
        .with_max_wait_ms(LONG_POLL_MS)
        .with_min_bytes(1 << 20)
        .with_max_bytes(10);
    match ctx.m.send_at(&req, 12).await {
        Ok(r) => {
            let p = &r.responses[0].partitions[0];
            let sent = p.records.as_ref().is_some_and(|b| !b.is_empty());
            check("(error, records sent)", (p.error_code, sent), (0, true))
        }
        Err(_) => Got::Closed,
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("Fetch v12: aborted transactions null at read_uncommitted, an empty list at read_committed",
            "KafkaApis.handleFetchRequest (abortedTransactions.orElse(null)); LocalLog.read (includeAbortedTxns)",
            Got::Code(0), |ctx| aborted_by_isolation(ctx).await),
        row!("Fetch past the log end: OFFSET_OUT_OF_RANGE with high watermark, last stable and log start offsets -1",
            "ReplicaManager.readFromLog (createLogReadResult: UnknownOffset)",
            Got::Code(0), |ctx| out_of_range_offsets(ctx).await),
        row!("Fetch at read_committed: after the first partition with data, a batch above the partition's limit is not sent, and no aborted transactions with it",
            "ReplicaManager.readFromLog (checkFetchDataInfo, firstEntryIncomplete)",
            Got::Code(0), |ctx| limit_after_the_first(ctx).await),
        row!("Fetch with a partition limit inside the second batch: the bytes up to the limit, the first batch and the start of the second",
            "LogSegment.read (log.slice(startPosition, fetchSize)); UnifiedLog.read",
            Got::Code(0), |ctx| limit_cuts_a_batch(ctx).await),
        row!("Fetch long poll whose min_bytes the bytes available reach, each partition's up to its limit, though fewer are sent: answered at once",
            "DelayedFetch.tryComplete (min(positionDiff, maxBytes) per partition)",
            Got::Code(0), |ctx| min_bytes_by_availability(ctx).await),
        row!("Fetch long poll naming a topic that does not exist beside a caught-up partition: waits max_wait_ms",
            "KafkaApis.handleFetchRequest (erroneous partitions do not end the wait)",
            Got::Code(0), |ctx| unknown_partition_waits(ctx).await),
        row!("Fetch long poll with min_bytes above max_bytes: min_bytes is max_bytes, answered at once",
            "KafkaApis.handleFetchRequest (fetchMinBytes = min(minBytes, fetchMaxBytes))",
            Got::Code(0), |ctx| min_bytes_capped(ctx).await),
        row!("Fetch with a topic entry naming no partitions beside one that does: only the latter is answered",
            "FetchRequest.fetchData / FetchResponse (answers kept per partition)", Got::Code(0), |ctx| {
                let topic = match filled(&ctx, "partless", 1).await {
                    Ok(t) => t,
                    Err(g) => return g,
                };
                let mut req = fetch_of(&topic, &[(0, 0, 1 << 20)]);
                req.topics.insert(0, FetchTopic::default().with_topic(common::name(&topic)));
                match ctx.ask(&req, 12).await {
                    Ok(r) => check("topic answers", r.responses.len(), 1),
                    Err(g) => g,
                }
            }),
        row!("Fetch long poll naming no partitions: answered at once",
            "KafkaApis.handleFetchRequest (interesting.isEmpty)", Got::Code(0), |ctx| {
                let req = FetchRequest::default().with_max_wait_ms(LONG_POLL_MS).with_min_bytes(1);
                match ctx.m.send_at(&req, 12).await {
                    Ok(r) => check("(error, topics)", (r.error_code, r.responses.len()), (0, 0)),
                    Err(_) => Got::Closed,
                }
            }),
        row!("Fetch continuing a session the broker never made (epoch 1): FETCH_SESSION_ID_NOT_FOUND, no topics",
            "FetchManager.newContext (SessionErrorContext)", Got::Code(0), |ctx| {
                let topic = match filled(&ctx, "session", 1).await {
                    Ok(t) => t,
                    Err(g) => return g,
                };
                let req = fetch_of(&topic, &[(0, 0, 1 << 20)])
                    .with_session_id(12345)
                    .with_session_epoch(1);
                match ctx.m.send_at(&req, 12).await {
                    Ok(r) => check(
                        "(error, session id, topics)",
                        (r.error_code, r.session_id, r.responses.len()),
                        (FETCH_SESSION_ID_NOT_FOUND, 0, 0),
                    ),
                    Err(_) => Got::Closed,
                }
            }),
    ]
}
