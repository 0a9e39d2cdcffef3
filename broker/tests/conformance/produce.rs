//! Produce rules (LogValidator, UnifiedLog, ProduceRequest, KafkaApis.handleProduceRequest).

use kafka_protocol::messages::ProduceRequest;

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

/// Produces `records` to partition 0 of a fresh topic at `version` with acks=all.
async fn produce_at(ctx: &Ctx, records: bytes::Bytes, version: i16) -> Got {
    let topic = ctx.topic("t");
    common::create_topic(&ctx.m, &topic, 1).await;
    let req: ProduceRequest = common::produce_request(&topic, 0, records, -1);
    code_or_closed(ctx.m.send_at(&req, version).await, |r| {
        r.responses[0].partition_responses[0].error_code
    })
}

pub fn rows() -> Vec<Row> {
    vec![Row {
        rule: "Produce: one v2 batch with base offset 0 is accepted",
        kafka: "UnifiedLog.analyzeAndValidateRecords",
        expect: Got::Code(0),
        config: None,
        run: |ctx| Box::pin(async move { produce_at(&ctx, common::batch(3, 1_000), 9).await }),
    }]
}
