//! Produce naming one partition several times: Kafka keys the request by partition, so the
//! partition is appended once (the last entry that passes ProduceRequest.validateRecords)
//! and answered once; an entry failing that check answers for the partition even when
//! another entry was appended.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use super::support::{create, spec, Spec};
use crate::common;
use crate::harness::{Ctx, Got, Row};

const HANDLER: &str = "KafkaApis.handleProduceRequest (maps keyed by TopicPartition)";

/// Produce v9 to partition 0 of a fresh topic (`None`: one that does not exist), one topic
/// entry per element of `entries`, one partition entry per batch. `Code(c)` when the
/// answer names the topic once with one answer `c` and the partition holds `stored`
/// records (a topic that does not exist is not fetched).
async fn listed(ctx: Ctx, create_topic: bool, entries: &[&[Bytes]], stored: i64) -> Got {
    let topic = if create_topic {
        create(&ctx, &[]).await
    } else {
        ctx.topic("missing")
    };
    let topic_data = entries
        .iter()
        .map(|batches| {
            TopicProduceData::default()
                .with_name(common::name(&topic))
                .with_partition_data(
                    batches
                        .iter()
                        .map(|b| {
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(b.clone()))
                        })
                        .collect(),
                )
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(topic_data);
    let Ok(resp) = ctx.m.send_at(&req, 9).await else {
        return Got::Closed;
    };
    let answers: Vec<(usize, i32, i16)> = resp
        .responses
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            t.partition_responses
                .iter()
                .map(move |p| (ti, p.index, p.error_code))
        })
        .collect();
    let [(0, 0, code)] = answers[..] else {
        return Got::Answer(format!("answers (topic, partition, code): {answers:?}"));
    };
    if create_topic {
        let p = common::fetch(&ctx.m, &topic, 0, 0).await;
        let records = common::records_of(&p).len() as i64;
        if p.high_watermark != stored || records != stored {
            return Got::Answer(format!(
                "code {code}, but {records} records stored up to {}, not {stored}",
                p.high_watermark
            ));
        }
    }
    Got::Code(code)
}

fn records(n: i32) -> Bytes {
    spec(|s| s.records = n).bytes()
}

fn two_batches() -> Bytes {
    [Spec::default().bytes(), Spec::default().bytes()]
        .concat()
        .into()
}

macro_rules! row {
    ($rule:expr, $expect:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: HANDLER,
            expect: $expect,
            config: None,
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}

pub fn rows() -> Vec<Row> {
    vec![
        row!(
            "Produce naming partition 0 four times in two topic entries: one answer, the last entry appended once",
            Got::Code(0),
            |ctx| listed(ctx, true, &[&[records(1), records(2), records(3)], &[records(4)]], 4).await
        ),
        row!(
            "Produce naming a partition twice, the second entry invalid: INVALID_RECORD, the first appended",
            Got::Code(87),
            |ctx| listed(ctx, true, &[&[records(2), two_batches()]], 2).await
        ),
        row!(
            "Produce naming a partition twice, the first entry invalid: INVALID_RECORD, the second appended",
            Got::Code(87),
            |ctx| listed(ctx, true, &[&[two_batches(), records(2)]], 2).await
        ),
        row!(
            "Produce naming an unknown topic's partition twice: one UNKNOWN_TOPIC_OR_PARTITION",
            Got::Code(3),
            |ctx| listed(ctx, false, &[&[records(1)], &[records(1)]], 0).await
        ),
    ]
}
