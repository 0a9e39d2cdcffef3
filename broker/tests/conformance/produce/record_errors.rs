//! KIP-467: a batch refused because of its records names them. Produce v8+ answers each
//! record at fault in `record_errors` (its index in the batch and why) beside a message
//! for the batch: "... due to invalid timestamp" when any timestamp is out of range,
//! otherwise the count and the first three (LogValidator.processRecordErrors).

use super::support::{create, spec, Spec, LZ4};
use crate::common;
use crate::harness::{Ctx, Got, Row};

const VALIDATOR: &str = "LogValidator.processRecordErrors / KafkaApis.handleProduceRequest";

/// Produces `spec` at `version` to a fresh topic with `configs`: `Code(code)` when the
/// answer's message starts with `message` and `record_errors` lists `indexes`, each with a
/// message containing every one of `each`.
async fn refused(
    ctx: Ctx,
    configs: &[(&'static str, &'static str)],
    (spec, version): (Spec, i16),
    (message, indexes, each): (&str, &[i32], &[&str]),
) -> Got {
    let topic = create(&ctx, configs).await;
    let req = common::produce_request(&topic, 0, spec.bytes(), -1);
    let Ok(resp) = ctx.m.send_at(&req, version).await else {
        return Got::Closed;
    };
    let p = &resp.responses[0].partition_responses[0];
    let got_message = p.error_message.as_ref().map(|m| m.to_string());
    let listed: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    let each_ok = p.record_errors.iter().all(|e| {
        e.batch_index_error_message
            .as_ref()
            .is_some_and(|m| each.iter().all(|part| m.contains(part)))
    });
    let message_ok = got_message.as_deref().unwrap_or("").starts_with(message);
    if message_ok && listed == indexes && each_ok {
        Got::Code(p.error_code)
    } else {
        Got::Answer(format!(
            "code {}, message {got_message:?}, record_errors {:?}",
            p.error_code, p.record_errors
        ))
    }
}

/// A client's keyless LogAppendTime batch in `codec` to a LogAppendTime topic: refused,
/// each record named as `(class, key size)` in Kafka's toString.
async fn stamped_by_client(ctx: Ctx, codec: i16, (class, key): (&str, &str)) -> Got {
    let stamped = spec(|s| {
        s.log_append_time = true;
        s.key = false;
        s.codec = codec;
    });
    let named = format!("Invalid timestamp type in message {class}(offset=");
    let key = format!(", {key}, value=");
    refused(
        ctx,
        &[("message.timestamp.type", "LogAppendTime")],
        (stamped, 9),
        (
            "One or more records have been rejected due to invalid timestamp",
            &[0, 1, 2],
            &[&named, &key],
        ),
    )
    .await
}

/// A batch stamped `offset_ms` from now to a topic whose only limit is the deprecated
/// `message.timestamp.difference.max.ms` of one minute: refused, each record named.
async fn beyond_difference(ctx: Ctx, offset_ms: i64) -> Got {
    let stamped = spec(|s| s.timestamp_ms += offset_ms);
    refused(
        ctx,
        &[("message.timestamp.difference.max.ms", "60000")],
        (stamped, 8),
        (
            "One or more records have been rejected due to invalid timestamp",
            &[0, 1, 2],
            &["of message with offset"],
        ),
    )
    .await
}

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            rule: "Kafka 2.8, Produce v8: a timestamp further from now than message.timestamp.difference.max.ms, INVALID_TIMESTAMP",
            kafka: "LogValidator.validateTimestamp (2.8: timestampDiffMaxMs)",
            expect: Got::Code(32),
            config: Some(|c| c.emulate_kafka = kmirror_broker::KafkaRelease::V2_8),
            run: |ctx| Box::pin(beyond_difference(ctx, -600_000)),
        },
        Row {
            rule: "Kafka 3.6-3.9, Produce v8: message.timestamp.difference.max.ms limits both ways while before/after.max.ms are Long.MAX_VALUE, INVALID_TIMESTAMP",
            kafka: "LogConfig.getMessageTimestampAfterMaxMs (3.9)",
            expect: Got::Code(32),
            config: Some(|c| c.emulate_kafka = kmirror_broker::KafkaRelease::V3_9),
            run: |ctx| Box::pin(beyond_difference(ctx, 600_000)),
        },
        Row {
            rule: "Produce v9: timestamps out of range list every record in record_errors, INVALID_TIMESTAMP",
            kafka: VALIDATOR,
            expect: Got::Code(32),
            config: None,
            run: |ctx| {
                Box::pin(async move {
                    let old = spec(|s| s.timestamp_ms = 1_000);
                    refused(
                        ctx,
                        &[("message.timestamp.before.max.ms", "60000")],
                        (old, 9),
                        (
                            "One or more records have been rejected due to invalid timestamp",
                            &[0, 1, 2],
                            &["of message with offset"],
                        ),
                    )
                    .await
                })
            },
        },
        Row {
            rule: "Produce v9: a client's LogAppendTime batch to a LogAppendTime topic names each record as DefaultRecord shows it, INVALID_TIMESTAMP",
            kafka: "LogValidator.validateTimestamp / DefaultRecord.toString",
            expect: Got::Code(32),
            config: None,
            run: |ctx| {
                Box::pin(stamped_by_client(ctx, 0, ("DefaultRecord", "key=0 bytes")))
            },
        },
        Row {
            rule: "Produce v9: the same batch compressed, its codec kept, names each record as PartialDefaultRecord shows it (a null key: -1 bytes)",
            kafka: "LogValidator.validateMessagesAndAssignOffsetsCompressed (skipKeyValueIterator) / PartialDefaultRecord.toString",
            expect: Got::Code(32),
            config: None,
            run: |ctx| {
                Box::pin(stamped_by_client(ctx, LZ4, ("PartialDefaultRecord", "key=-1 bytes")))
            },
        },
        Row {
            rule: "Produce v9: keyless records to a compacted topic list each record, INVALID_RECORD",
            kafka: VALIDATOR,
            expect: Got::Code(87),
            config: None,
            run: |ctx| {
                Box::pin(async move {
                    let keyless = spec(|s| s.key = false);
                    refused(
                        ctx,
                        &[("cleanup.policy", "compact")],
                        (keyless, 9),
                        (
                            "One or more records have been rejected due to 3 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=0, message='Compacted topic cannot accept message without key in topic partition",
                            &[0, 1, 2],
                            &["Compacted topic cannot accept message without key"],
                        ),
                    )
                    .await
                })
            },
        },
    ]
}
