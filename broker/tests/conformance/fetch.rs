//! Fetch limits: a response never carries more than Kafka's default `fetch.max.bytes`
//! (55 MiB) whatever the request's `max_bytes`, and a partition named several times is
//! read once.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use crate::admin::{check, row};
use crate::common;
use crate::harness::{Ctx, Got, Row};

/// Kafka's `fetch.max.bytes` default (KafkaConfig / ServerConfigs.FETCH_MAX_BYTES_DEFAULT).
const FETCH_MAX_BYTES: i64 = 55 << 20;

/// A batch of `count` records of `value_bytes` each (incompressible enough not to matter:
/// the batch is uncompressed).
fn big_batch(count: i64, value_bytes: usize) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|i| {
            kmirror_wire::records::record(
                i,
                1_000 + i,
                None,
                Some(Bytes::from(vec![b'v'; value_bytes])),
            )
        })
        .collect();
    kmirror_wire::records::encode(&records, Compression::None).unwrap()
}

fn partition(index: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(index)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(i32::MAX)
}

/// Two partitions of 33 MiB each (38 batches of 7 records of 128 KiB), fetched with `max_bytes` = i32::MAX: the response's
/// record bytes, checked to be at most `fetch.max.bytes` (and more than one partition's).
async fn capped(ctx: Ctx) -> Got {
    let topic = ctx.topic("cap");
    common::create_topic(&ctx.m, &topic, 2).await;
    for p in 0..2 {
        for _ in 0..38 {
            let r = common::produce(&ctx.m, &topic, p, big_batch(7, 128 << 10)).await;
            if r.error_code != 0 {
                return Got::Code(r.error_code);
            }
        }
    }
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(common::name(&topic))
            .with_partitions(vec![partition(0, 0), partition(1, 0)])]);
    let Ok(r) = ctx.m.send_at(&req, common::FETCH_BY_NAME).await else {
        return Got::Closed;
    };
    let bytes: i64 = r.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |b| b.len() as i64))
        .sum();
    if bytes <= 32 << 20 {
        return Got::Answer(format!(
            "only {bytes} bytes: the second partition was not read"
        ));
    }
    check("at most fetch.max.bytes", bytes <= FETCH_MAX_BYTES, true)
}

/// One partition named three times (offsets 0, 1, 2): one answer, read from the last
/// entry's offset.
async fn repeated(ctx: Ctx) -> Got {
    let topic = ctx.topic("rep");
    common::create_topic(&ctx.m, &topic, 1).await;
    for _ in 0..3 {
        common::produce(&ctx.m, &topic, 0, common::batch(1, 1_000)).await;
    }
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(common::name(&topic))
                .with_partitions(vec![partition(0, 0), partition(0, 1)]),
            FetchTopic::default()
                .with_topic(common::name(&topic))
                .with_partitions(vec![partition(0, 2)]),
        ]);
    let Ok(r) = ctx.m.send_at(&req, common::FETCH_BY_NAME).await else {
        return Got::Closed;
    };
    let answers: Vec<(i32, usize)> = r
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, common::records_of(p).len()))
        .collect();
    // The last entry fetches from offset 2: one record.
    check("(partition, records) answers", answers, vec![(0, 1)])
}

pub fn rows() -> Vec<Row> {
    vec![
        row!(
            "Fetch with max_bytes above fetch.max.bytes: at most 55 MiB in the response",
            "KafkaApis.handleFetchRequest (min(maxBytes, fetch.max.bytes))",
            Got::Code(0),
            |ctx| capped(ctx).await
        ),
        row!(
            "Fetch naming a partition three times: one answer, from the last entry's offset",
            "FetchRequest.fetchData (LinkedHashMap by topic partition)",
            Got::Code(0),
            |ctx| repeated(ctx).await
        ),
    ]
}
