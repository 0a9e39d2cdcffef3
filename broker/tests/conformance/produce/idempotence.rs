//! The idempotent producer's state and how its refusals and duplicates are answered: the
//! state outlives the records it came from (DeleteRecords moves the log start, not the
//! producers: ProducerStateManager.onLogStartOffsetIncremented), a duplicate answers with
//! the stored batch's timestamp as its append time (UnifiedLog.append), a refusal that
//! is not about records carries no message (LogAppendResult.errorMessage), and a refusal by
//! the append answers the log start offset Kafka answers (ReplicaManager.appendToLocalLog).

use kafka_protocol::messages::produce_response::PartitionProduceResponse;

use super::support::{create, spec, Spec};
use crate::admin::{check, delete_records};
use crate::common;
use crate::harness::{Ctx, Got, Row};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const MESSAGE_TOO_LARGE: i16 = 10;

/// An idempotent batch of `records` records from producer 7 at `base_sequence`.
fn idempotent(records: i32, base_sequence: i32, timestamp_ms: i64) -> Spec {
    spec(|s| {
        s.records = records;
        s.producer_id = 7;
        s.base_sequence = base_sequence;
        s.timestamp_ms = timestamp_ms;
    })
}

/// Produce v9 (acks=all) of `batch` to partition 0 of `topic`: its answer.
async fn produce(ctx: &Ctx, topic: &str, batch: &Spec) -> Result<PartitionProduceResponse, Got> {
    let req = common::produce_request(topic, 0, batch.bytes(), -1);
    match ctx.m.send_at(&req, 9).await {
        Ok(r) => Ok(r.responses[0].partition_responses[0].clone()),
        Err(_) => Err(Got::Closed),
    }
}

/// Five records, DeleteRecords past them, then the same batch again: answered as the
/// duplicate it is (base offset 0), nothing appended.
async fn retried_after_delete_records(ctx: Ctx) -> Got {
    let topic = create(&ctx, &[]).await;
    let batch = idempotent(5, 0, 1_000);
    match produce(&ctx, &topic, &batch).await {
        Ok(p) if p.error_code == 0 => {}
        Ok(p) => return Got::Code(p.error_code),
        Err(g) => return g,
    }
    let (code, low_watermark) = delete_records(&ctx, &topic, 5).await;
    if (code, low_watermark) != (0, 5) {
        return Got::Answer(format!(
            "DeleteRecords answered {code}, low watermark {low_watermark}"
        ));
    }
    let again = match produce(&ctx, &topic, &batch).await {
        Ok(p) => p,
        Err(g) => return g,
    };
    let high_watermark = common::fetch(&ctx.m, &topic, 0, 5).await.high_watermark;
    check(
        "(error, base offset, high watermark)",
        (again.error_code, again.base_offset, high_watermark),
        (0, 0, 5),
    )
}

/// A batch sent twice to a CreateTime topic: the first answer has no append time, the
/// duplicate's is the stored batch's max timestamp.
async fn duplicate_append_time(ctx: Ctx) -> Got {
    let topic = create(&ctx, &[]).await;
    let batch = idempotent(3, 0, 1_000);
    let mut answers = Vec::new();
    for _ in 0..2 {
        match produce(&ctx, &topic, &batch).await {
            Ok(p) => answers.push((p.error_code, p.base_offset, p.log_append_time_ms)),
            Err(g) => return g,
        }
    }
    check(
        "(error, base offset, log append time) of the batch and its duplicate",
        answers,
        vec![(0, 0, -1), (0, 0, 1_002)],
    )
}

/// A sequence gap: OUT_OF_ORDER_SEQUENCE_NUMBER with a null message.
async fn gap_without_message(ctx: Ctx) -> Got {
    let topic = create(&ctx, &[]).await;
    if let Err(g) = produce(&ctx, &topic, &idempotent(1, 0, 1_000)).await {
        return g;
    }
    match produce(&ctx, &topic, &idempotent(1, 5, 1_000)).await {
        Ok(p) => check(
            "(error, message)",
            (p.error_code, p.error_message.map(|m| m.to_string())),
            (OUT_OF_ORDER_SEQUENCE_NUMBER, None),
        ),
        Err(g) => g,
    }
}

/// Five records, DeleteRecords to offset 3, then a sequence gap and a batch larger than
/// the topic's max.message.bytes: the gap is answered with the partition's log start
/// offset, the oversized batch (an error Kafka expects) with -1.
async fn refusals_log_start(ctx: Ctx) -> Got {
    let topic = create(&ctx, &[("max.message.bytes", "2000")]).await;
    match produce(&ctx, &topic, &idempotent(5, 0, 1_000)).await {
        Ok(p) if p.error_code == 0 => {}
        Ok(p) => return Got::Code(p.error_code),
        Err(g) => return g,
    }
    let (code, _) = delete_records(&ctx, &topic, 3).await;
    if code != 0 {
        return Got::Answer(format!("DeleteRecords answered {code}"));
    }
    let mut answers = Vec::new();
    for batch in [idempotent(1, 9, 1_000), spec(|s| s.records = 200)] {
        match produce(&ctx, &topic, &batch).await {
            Ok(p) => answers.push((p.error_code, p.log_start_offset)),
            Err(g) => return g,
        }
    }
    check(
        "(error, log start offset) of a sequence gap and of an oversized batch",
        answers,
        vec![(OUT_OF_ORDER_SEQUENCE_NUMBER, 3), (MESSAGE_TOO_LARGE, -1)],
    )
}

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            rule: "Produce retried after DeleteRecords removed its first append: a duplicate (the producer's state is kept)",
            kafka: "ProducerStateManager.onLogStartOffsetIncremented (producers are not removed)",
            expect: Got::Code(0),
            config: None,
            run: |ctx| Box::pin(retried_after_delete_records(ctx)),
        },
        Row {
            rule: "Produce of a duplicate on a CreateTime topic: the stored batch's max timestamp as its log append time",
            kafka: "UnifiedLog.append (appendInfo.setLogAppendTime(duplicate.timestamp))",
            expect: Got::Code(0),
            config: None,
            run: |ctx| Box::pin(duplicate_append_time(ctx)),
        },
        Row {
            rule: "Produce v9 refused for its sequence: OUT_OF_ORDER_SEQUENCE_NUMBER with a null message",
            kafka: "ReplicaManager.appendToLocalLog (hasCustomErrorMessage only for RecordValidationException)",
            expect: Got::Code(0),
            config: None,
            run: |ctx| Box::pin(gap_without_message(ctx)),
        },
        Row {
            rule: "Produce refused by the append: the partition's log start offset, but -1 for the errors Kafka expects (e.g. MESSAGE_TOO_LARGE)",
            kafka: "ReplicaManager.appendToLocalLog (processFailedRecord; UNKNOWN_LOG_APPEND_INFO for the six expected exceptions)",
            expect: Got::Code(0),
            config: None,
            run: |ctx| Box::pin(refusals_log_start(ctx)),
        },
    ]
}
