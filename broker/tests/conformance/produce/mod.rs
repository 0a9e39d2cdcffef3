//! Produce rules (LogValidator, UnifiedLog, ProduceRequest, KafkaApis.handleProduceRequest,
//! ReplicaManager.appendRecords), and FindCoordinator for groups. Batches are built
//! byte by byte ([`support::Spec`]) so that each row can break exactly one rule.

mod duplicates;
mod idempotence;
mod record_errors;
pub(crate) mod support;

use crate::admin::row;
use crate::common;
use crate::harness::{Got, Row};
use support::*;

const INVALID_RECORD: Got = Got::Code(87);
const INVALID_TIMESTAMP: Got = Got::Code(32);
const OK: Got = Got::Code(0);

pub fn rows() -> Vec<Row> {
    let mut rows = batch_rows();
    rows.extend(record_rows());
    rows.extend(request_rows());
    rows.extend(duplicates::rows());
    rows.extend(record_errors::rows());
    rows.extend(idempotence::rows());
    rows
}

fn batch_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: one v2 batch with base offset 0 is accepted",
            "UnifiedLog.analyzeAndValidateRecords",
            OK,
            |ctx| produce_at(&ctx, common::batch(3, 1_000), 9).await
        ),
        row!(
            "Produce v3+: two batches for one partition",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| produce_at(
                &ctx,
                [Spec::default().bytes(), Spec::default().bytes()]
                    .concat()
                    .into(),
                9
            )
            .await
        ),
        row!(
            "Produce v3+: magic 1 batch",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.magic = 1).bytes(), 9).await
        ),
        row!(
            "Produce: client batch with base offset 5",
            "UnifiedLog.analyzeAndValidateRecords",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.base_offset = 5).bytes(), 9).await
        ),
        row!(
            "Produce: a truncated partial batch after a whole one is trimmed",
            "UnifiedLog.trimInvalidBytes",
            OK,
            |ctx| {
                let whole = Spec::default().bytes();
                produce_at(&ctx, [whole.clone(), whole.slice(..30)].concat().into(), 9).await
            }
        ),
        row!(
            "Produce: only a truncated batch",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| {
                let b = Spec::default().bytes();
                produce_at(&ctx, b.slice(..b.len() - 3), 9).await
            }
        ),
        row!(
            "Produce: header count 0",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.count = Some(0)).bytes(), 9).await
        ),
        row!(
            "Produce: count and lastOffsetDelta disagree",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.last_offset_delta = Some(5)).bytes(), 9).await
        ),
        row!(
            "Produce: header count above the records in the batch",
            "DefaultRecordBatch.RecordIterator",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.count = Some(4)).bytes(), 9).await
        ),
        row!(
            "Produce: lz4 batch whose count is below its records",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            INVALID_RECORD,
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.codec = LZ4;
                    s.count = Some(2)
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: lz4 batch with matching count",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            OK,
            |ctx| produce_at(&ctx, spec(|s| s.codec = LZ4).bytes(), 9).await
        ),
        row!(
            "Produce: lz4 inner offsets 0,2,4 are rewritten to 0,1,2, not refused",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            OK,
            |ctx| stored(
                &ctx,
                &[],
                spec(|s| {
                    s.codec = LZ4;
                    s.offset_deltas = |i| 2 * i
                }),
                same_records
            )
            .await
        ),
        row!(
            "Produce: producer id with baseSequence -1",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.producer_id = 1_000).bytes(), 9).await
        ),
        row!(
            "Produce: producer id with baseSequence 0",
            "LogValidator.validateBatch",
            OK,
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.producer_id = 1_000;
                    s.base_sequence = 0
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: a batch over the topic's max.message.bytes",
            "UnifiedLog.analyzeAndValidateRecords",
            Got::Code(10),
            |ctx| produce_to(
                &ctx,
                &[("max.message.bytes", "200")],
                spec(|s| s.records = 30).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: a batch of 1.3 MB under the topic's max.message.bytes",
            "UnifiedLog.analyzeAndValidateRecords",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("max.message.bytes", "4000000")],
                spec(|s| s.records = 50_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: a batch of 1.3 MB over the topic's segment.bytes of 1 MiB",
            "UnifiedLog.append",
            Got::Code(18),
            |ctx| produce_to(
                &ctx,
                &[
                    ("max.message.bytes", "4000000"),
                    ("segment.bytes", "1048576")
                ],
                spec(|s| s.records = 50_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce v6: zstd batch",
            "ProduceRequest.validateRecords",
            Got::Code(76),
            |ctx| produce_at(&ctx, spec(|s| s.codec = ZSTD).bytes(), 6).await
        ),
        row!(
            "Produce v7: zstd batch",
            "ProduceRequest.validateRecords",
            OK,
            |ctx| produce_at(&ctx, spec(|s| s.codec = ZSTD).bytes(), 7).await
        ),
    ]
}

fn record_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: CreateTime 1 min ahead after IncrementalAlterConfigs sets the broker's log.message.timestamp.after.max.ms=1000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            Some(|_| {}),
            |ctx| {
                alter_broker(&ctx, "log.message.timestamp.after.max.ms", "1000").await;
                produce_at(&ctx, spec(|s| s.timestamp_ms = now_ms() + 60_000).bytes(), 9).await
            }
        ),
        row!(
            "Produce: CreateTime 2 h ahead (after.max.ms default 1 h, KIP-1030)",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 7_200_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Kafka 3.6: Produce CreateTime 2 h ahead is accepted (after.max.ms defaults to Long.MAX before 4.0)",
            "LogConfig (DEFAULT_MESSAGE_TIMESTAMP_AFTER_MAX_MS, 3.6-3.9)",
            OK,
            Some(|c| c.emulate_kafka = kmirror_broker::KafkaRelease::V3_6),
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 7_200_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 30 min ahead",
            "LogValidator.validateTimestamp",
            OK,
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 1_800_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime Long.MIN_VALUE+1000, topic after.max.ms=Long.MAX_VALUE: accepted (Java's long difference wraps)",
            "LogValidator.recordHasInvalidTimestamp",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.after.max.ms", "9223372036854775807")],
                spec(|s| s.timestamp_ms = i64::MIN + 1_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 1 h old, topic before.max.ms=60000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.before.max.ms", "60000")],
                spec(|s| s.timestamp_ms = now_ms() - 3_600_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime now, topic before.max.ms=60000",
            "LogValidator.validateTimestamp",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.before.max.ms", "60000")],
                Spec::default().bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 1 min ahead, broker after.max.ms=1000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            Some(|c| c.timestamp_after_max_ms = Some(1_000)),
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 60_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: client LogAppendTime batch to a LogAppendTime topic",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.type", "LogAppendTime")],
                spec(|s| s.log_append_time = true).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime batch to a LogAppendTime topic is stamped",
            "LogValidator.assignOffsetsNonCompressed",
            OK,
            |ctx| stored(
                &ctx,
                &[("message.timestamp.type", "LogAppendTime")],
                spec(|s| s.timestamp_ms = 1_000),
                |b, _| b.is_log_append_time() && b.max_timestamp() > 1_000_000
            )
            .await
        ),
        row!(
            "Produce: client LogAppendTime batch to a CreateTime topic becomes CreateTime",
            "DefaultRecordBatch.setMaxTimestamp",
            OK,
            |ctx| stored(&ctx, &[], spec(|s| s.log_append_time = true), |b, _| !b
                .is_log_append_time())
            .await
        ),
        row!(
            "Produce: record without key to a compacted topic",
            "LogValidator.validateKey",
            INVALID_RECORD,
            |ctx| produce_to(
                &ctx,
                &[("cleanup.policy", "compact")],
                spec(|s| s.key = false).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: keyed records to a compacted topic",
            "LogValidator.validateKey",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("cleanup.policy", "delete,compact")],
                Spec::default().bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: compression.type=lz4 recompresses, duplicate header keys survive",
            "UnifiedLog.append / BrokerCompressionType",
            OK,
            |ctx| stored(
                &ctx,
                &[("compression.type", "lz4")],
                spec(|s| s.duplicate_headers = true),
                |b, s| b.compression() == LZ4 && same_records(b, s) && dup_headers_kept(b)
            )
            .await
        ),
        row!(
            "Produce: compression.type=uncompressed stores lz4 batches uncompressed",
            "UnifiedLog.append / BrokerCompressionType",
            OK,
            |ctx| stored(
                &ctx,
                &[("compression.type", "uncompressed")],
                spec(|s| {
                    s.codec = LZ4;
                    s.duplicate_headers = true
                }),
                |b, s| b.compression() == 0 && same_records(b, s) && dup_headers_kept(b)
            )
            .await
        ),
        row!(
            "Produce: compression.type=producer keeps the batch as sent",
            "BrokerCompressionType.targetCompression",
            OK,
            |ctx| stored(&ctx, &[], spec(|s| s.codec = LZ4), |b, s| b.records_bytes()
                == &s.bytes()[61..])
            .await
        ),
    ]
}

fn request_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: acks=2",
            "ReplicaManager.appendRecords",
            Got::Code(21),
            |ctx| {
                let t = create(&ctx, &[]).await;
                send(
                    &ctx,
                    &common::produce_request(&t, 0, Spec::default().bytes(), 2),
                    9,
                )
                .await
            }
        ),
        row!(
            "Produce: acks=1",
            "ReplicaManager.appendRecords",
            OK,
            |ctx| {
                let t = create(&ctx, &[]).await;
                send(
                    &ctx,
                    &common::produce_request(&t, 0, Spec::default().bytes(), 1),
                    9,
                )
                .await
            }
        ),
        row!(
            "Produce acks=0 that fails closes the connection",
            "KafkaApis.handleProduceRequest",
            Got::Closed,
            |ctx| acks_zero(&ctx, "missing-topic").await
        ),
        row!(
            "Produce acks=0 that succeeds keeps the connection",
            "KafkaApis.handleProduceRequest",
            OK,
            |ctx| {
                let t = create(&ctx, &[]).await;
                acks_zero(&ctx, &t).await
            }
        ),
        row!(
            "Produce: transactional batch without a transactional id",
            "KafkaApis.handleProduceRequest",
            Got::Code(53),
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.transactional = true;
                    s.producer_id = 7;
                    s.base_sequence = 0
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "FindCoordinator v4: key type GROUP",
            "KafkaApis.handleFindCoordinatorRequest",
            OK,
            |ctx| find_coordinator(&ctx, 0, 4).await
        ),
        row!(
            "Produce v13: topic by id",
            "KafkaApis.handleProduceRequest",
            OK,
            |ctx| by_id(&ctx, true).await
        ),
        row!(
            "Produce v13: unknown topic id",
            "KafkaApis.handleProduceRequest",
            Got::Code(100),
            |ctx| by_id(&ctx, false).await
        ),
    ]
}
