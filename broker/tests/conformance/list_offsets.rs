//! ListOffsets rules: lookups by time on LogAppendTime topics (every record carries the
//! batch's append time) and after DeleteRecords moved the log start into a batch.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use crate::admin::{check, create_with, delete_records, row};
use crate::common;
use crate::harness::{kafka_2_8, Ctx, Got, Row};

// ---- ListOffsets on LogAppendTime topics ---------------------------------------------

/// (error, timestamp, offset) of ListOffsets v7 for partition 0 at `timestamp`.
async fn list_offset(ctx: &Ctx, topic: &str, timestamp: i64) -> Result<(i16, i64, i64), Got> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let r = ctx.m.send_at(&req, 7).await.map_err(|_| Got::Closed)?;
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.timestamp, p.offset))
}

/// A LogAppendTime topic holding one batch created at 1000..1002; its append time.
async fn log_append_time_topic(ctx: &Ctx) -> Result<(String, i64), Got> {
    let topic = ctx.topic("lat");
    let code = create_with(ctx, &topic, &[("message.timestamp.type", "LogAppendTime")]).await;
    if code != 0 {
        return Err(Got::Code(code));
    }
    let r = common::produce(&ctx.m, &topic, 0, common::batch(3, 1_000)).await;
    if r.error_code != 0 {
        return Err(Got::Code(r.error_code));
    }
    Ok((topic, r.log_append_time_ms))
}

async fn lat_lookup(ctx: Ctx, query: Option<i64>, want_hit: bool) -> Got {
    let (topic, append_ms) = match log_append_time_topic(&ctx).await {
        Ok(v) => v,
        Err(g) => return g,
    };
    let ts = query.unwrap_or(append_ms + 1);
    match list_offset(&ctx, &topic, ts).await {
        Ok((0, timestamp, offset)) => {
            let want = if want_hit { (append_ms, 0) } else { (-1, -1) };
            check("(timestamp, offset)", (timestamp, offset), want)
        }
        Ok((code, _, _)) => Got::Code(code),
        Err(g) => g,
    }
}

/// A topic holding one batch per entry of `batches` (the records' timestamps), then
/// DeleteRecords before `delete_before`: ListOffsets at `query`, checked against
/// `want` (timestamp, offset).
async fn lookup_after_delete(
    ctx: Ctx,
    batches: &[&[i64]],
    delete_before: i64,
    query: i64,
    want: (i64, i64),
) -> Got {
    let topic = ctx.topic("tsdr");
    common::create_topic(&ctx.m, &topic, 1).await;
    for timestamps in batches {
        let records: Vec<_> = (0..)
            .zip(timestamps.iter())
            .map(|(delta, &ts)| common::record(delta, ts))
            .collect();
        let bytes = kmirror_wire::records::encode(&records, Compression::None).unwrap();
        let r = common::produce(&ctx.m, &topic, 0, bytes).await;
        if r.error_code != 0 {
            return Got::Code(r.error_code);
        }
    }
    match delete_records(&ctx, &topic, delete_before).await {
        (0, _) => {}
        (code, _) => return Got::Code(code),
    }
    match list_offset(&ctx, &topic, query).await {
        Ok((0, timestamp, offset)) => check("(timestamp, offset)", (timestamp, offset), want),
        Ok((code, _, _)) => Got::Code(code),
        Err(g) => g,
    }
}

/// ListOffsets at `version` for partition 0 of `topic`, once per timestamp of
/// `timestamps`: every (partition, error, timestamp, offset) answered.
async fn list_each(
    ctx: &Ctx,
    topic: &str,
    timestamps: &[i64],
    version: i16,
) -> Result<Vec<(i32, i16, i64, i64)>, Got> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(
                timestamps
                    .iter()
                    .map(|&ts| {
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(ts)
                    })
                    .collect(),
            )]);
    let r = ctx.ask(&req, version).await?;
    Ok(r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code, p.timestamp, p.offset))
        .collect())
}

/// Emulating Kafka 3.6.
fn kafka_3_6(c: &mut kmirror_broker::BrokerConfig) {
    c.emulate_kafka = kmirror_broker::KafkaRelease::V3_6;
}

/// A topic holding records at 1000, 5000 and 2000 (offsets 0-2): ListOffsets at `version`
/// for `query`, checked against `want` (error, timestamp, offset).
async fn special_lookup(ctx: Ctx, query: i64, version: i16, want: (i16, i64, i64)) -> Got {
    let topic = ctx.topic("special");
    common::create_topic(&ctx.m, &topic, 1).await;
    let records: Vec<_> = (0..)
        .zip([1_000, 5_000, 2_000])
        .map(|(delta, ts)| common::record(delta, ts))
        .collect();
    let bytes = kmirror_wire::records::encode(&records, Compression::None).unwrap();
    let r = common::produce(&ctx.m, &topic, 0, bytes).await;
    if r.error_code != 0 {
        return Got::Code(r.error_code);
    }
    match list_each(&ctx, &topic, &[query], version).await {
        Ok(got) => check("answers", got, vec![(0, want.0, want.1, want.2)]),
        Err(g) => g,
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("ListOffsets naming a partition twice: answered once, INVALID_REQUEST",
            "ListOffsetsRequest (duplicatePartitions) / ReplicaManager.fetchOffset", Got::Code(0), |ctx| {
                let topic = ctx.topic("twice");
                common::create_topic(&ctx.m, &topic, 1).await;
                match list_each(&ctx, &topic, &[-1, -2], 7).await {
                    Ok(got) => check("answers", got, vec![(0, 42, -1, -1)]),
                    Err(g) => g,
                }
            }),
        row!("ListOffsets v6 for max timestamp (-3) of a topic that does not exist: UNSUPPORTED_VERSION before the topic is looked up",
            "ReplicaManager.fetchOffset (isListOffsetsTimestampUnsupported first)", Got::Code(0), |ctx| {
                match list_each(&ctx, &ctx.topic("none"), &[-3], 6).await {
                    Ok(got) => check("answers", got, vec![(0, 35, -1, -1)]),
                    Err(g) => g,
                }
            }),
        row!("ListOffsets v7 for latest tiered (-5): UNSUPPORTED_VERSION (v9+)",
            "ReplicaManager.isListOffsetsTimestampUnsupported (3.9+)", Got::Code(0),
            |ctx| special_lookup(ctx, -5, 7, (35, -1, -1)).await),
        row!("ListOffsets v6 for max timestamp (-3), emulating 3.6: the max timestamp (no version check before 3.9)",
            "UnifiedLog.fetchOffsetByTimestamp (3.6: MAX_TIMESTAMP; KAFKA-17331 added the check in 3.9)", Got::Code(0),
            Some(kafka_3_6), |ctx| special_lookup(ctx, -3, 6, (0, 5_000, 1)).await),
        row!("ListOffsets v7 for -5, emulating 3.6: searched as a timestamp, the first record",
            "UnifiedLog.fetchOffsetByTimestamp (3.6: an unknown value is a timestamp search)", Got::Code(0),
            Some(kafka_3_6), |ctx| special_lookup(ctx, -5, 7, (0, 1_000, 0)).await),
        row!("ListOffsets v6 for -3, emulating 2.8: searched as a timestamp (2.8 has no max timestamp), the first record",
            "Log.fetchOffsetByTimestamp (2.8: LATEST and EARLIEST only)", Got::Code(0),
            Some(kafka_2_8), |ctx| special_lookup(ctx, -3, 6, (0, 1_000, 0)).await),
        row!("ListOffsets by time on a LogAppendTime topic: first offset of the batch, with the append time",
            "FileRecords.searchForTimestamp", Got::Code(0), |ctx| lat_lookup(ctx, Some(1_001), true).await),
        row!("ListOffsets max timestamp on a LogAppendTime topic: first offset, append time",
            "UnifiedLog.fetchOffsetByTimestamp / RecordBatch.offsetOfMaxTimestamp", Got::Code(0),
            |ctx| lat_lookup(ctx, Some(-3), true).await),
        row!("ListOffsets by time after the append time on a LogAppendTime topic: no offset (-1)",
            "FileRecords.searchForTimestamp", Got::Code(0), |ctx| lat_lookup(ctx, None, false).await),
        row!("ListOffsets by time after DeleteRecords into a batch: the first record at or above the log start",
            "UnifiedLog.searchOffsetInLocalLog / FileRecords.searchForTimestamp", Got::Code(0),
            |ctx| lookup_after_delete(ctx, &[&[1_000, 1_001, 1_002, 1_003, 1_004]], 3, 1_000, (1_003, 3)).await),
        row!("ListOffsets by time whose records at or after it lie below the log start: the next batch's",
            "FileRecords.searchForTimestamp", Got::Code(0),
            |ctx| lookup_after_delete(ctx, &[&[1_000, 9_000, 1_000, 1_000], &[5_000]], 2, 4_000, (5_000, 4)).await),
        row!("ListOffsets by time matched only below the log start: no offset (-1)",
            "FileRecords.searchForTimestamp", Got::Code(0),
            |ctx| lookup_after_delete(ctx, &[&[1_000, 9_000, 1_000, 1_000], &[5_000]], 2, 8_000, (-1, -1)).await),
    ]
}
