//! Transactions with transaction.version 0/1 (TransactionCoordinator, KafkaApis, the
//! produce path's KIP-890 verification, read_committed reads): what a transactional
//! producer is refused, and what a read_committed consumer is shown.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_broker::versions::KafkaRelease;
use kmirror_wire::batch;

use crate::admin::row;
use crate::common;
use crate::harness::{Ctx, Got, Row};
use crate::produce::support::{find_coordinator, spec};

const OK: Got = Got::Code(0);

pub(crate) fn tid(ctx: &Ctx) -> TransactionalId {
    TransactionalId(StrBytes::from_string(ctx.topic("tx")))
}

/// InitProducerId for the row's transactional id: (error, producer id, epoch).
async fn init_with(ctx: &Ctx, timeout_ms: i32, version: i16) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid(ctx)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = ctx.ask(&req, version).await.expect("InitProducerId");
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId v4 naming the producer's own id and epoch (KIP-360): (error, epoch).
async fn bump(ctx: &Ctx, (pid, epoch): (i64, i16)) -> (i16, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid(ctx)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    let r = ctx.ask(&req, 4).await.expect("InitProducerId");
    (r.error_code, r.producer_epoch)
}

/// Produce v9 of `records` to partition 0: (error, log start offset, error message).
async fn produce_answer(ctx: &Ctx, topic: &str, records: Bytes) -> String {
    let req = common::produce_request(topic, 0, records, -1).with_transactional_id(Some(tid(ctx)));
    let r = ctx.ask(&req, 9).await.expect("Produce");
    let p = &r.responses[0].partition_responses[0];
    format!(
        "{} {} {:?}",
        p.error_code,
        p.log_start_offset,
        p.error_message.as_deref()
    )
}

pub(crate) async fn init(ctx: &Ctx) -> (i64, i16) {
    let (code, pid, epoch) = init_with(ctx, 60_000, 4).await;
    assert_eq!(code, 0, "InitProducerId");
    (pid, epoch)
}

/// A topic of the row with `partitions` partitions.
pub(crate) async fn topic(ctx: &Ctx, partitions: i32) -> String {
    let t = ctx.topic("t");
    common::create_topic(&ctx.m, &t, partitions).await;
    t
}

/// AddPartitionsToTxn v`version` (0-3): each partition's code, in request order.
async fn add(
    ctx: &Ctx,
    (pid, epoch): (i64, i16),
    partitions: &[(&str, i32)],
    version: i16,
) -> Vec<i16> {
    let topics = partitions
        .iter()
        .map(|(t, p)| {
            AddPartitionsToTxnTopic::default()
                .with_name(common::name(t))
                .with_partitions(vec![*p])
        })
        .collect();
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid(ctx))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let r = ctx.ask(&req, version).await.expect("AddPartitionsToTxn");
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub(crate) async fn end(ctx: &Ctx, (pid, epoch): (i64, i16), commit: bool, version: i16) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(tid(ctx))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    ctx.ask(&req, version).await.expect("EndTxn").error_code
}

/// A batch of `records` records of the producer (transactional or not), from `sequence`.
fn batch_of((pid, epoch): (i64, i16), sequence: i32, records: i32, transactional: bool) -> Bytes {
    let mut raw = spec(|s| {
        s.records = records;
        s.transactional = transactional;
        s.producer_id = pid;
        s.base_sequence = sequence;
    })
    .bytes()
    .to_vec();
    raw[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch::update_crc(&mut raw);
    raw.into()
}

/// Produces `records` to partition 0 of `topic` with the row's transactional id.
async fn produce(ctx: &Ctx, topic: &str, records: Bytes, version: i16) -> Got {
    let req = common::produce_request(topic, 0, records, -1).with_transactional_id(Some(tid(ctx)));
    match ctx.ask(&req, version).await {
        Ok(r) => Got::Code(r.responses[0].partition_responses[0].error_code),
        Err(closed) => closed,
    }
}

/// Plain records at offsets 0-2, then an open transaction of 3 records at 3-5.
pub(crate) async fn open_transaction(ctx: &Ctx) -> (String, (i64, i16)) {
    let t = topic(ctx, 1).await;
    common::produce(
        &ctx.m,
        &t,
        0,
        common::batch(3, crate::produce::support::now_ms()),
    )
    .await;
    let producer = init(ctx).await;
    assert_eq!(add(ctx, producer, &[(&t, 0)], 3).await, [0]);
    assert_eq!(
        produce(ctx, &t, batch_of(producer, 0, 3, true), 9).await,
        OK
    );
    (t, producer)
}

/// Fetch v12 from offset 0 at `isolation`: last stable offset, the offset after the last
/// record sent, and the aborted transactions as (producer id, first offset).
async fn fetch(ctx: &Ctx, t: &str, isolation: i8) -> String {
    let req = common::fetch_request(t, 0, 0, 0, 1 << 20).with_isolation_level(isolation);
    let r = ctx.ask(&req, 12).await.expect("Fetch");
    let p = &r.responses[0].partitions[0];
    let end = common::end_offset(p);
    let aborted = p.aborted_transactions.as_ref().map(|a| {
        a.iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect::<Vec<_>>()
    });
    format!("lso {} end {end} aborted {aborted:?}", p.last_stable_offset)
}

async fn list_latest(ctx: &Ctx, t: &str, isolation: i8) -> Got {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(t))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r = ctx.ask(&req, 7).await.expect("ListOffsets");
    Got::Value(r.topics[0].partitions[0].offset)
}

pub(crate) fn emulate_3_0(c: &mut kmirror_broker::BrokerConfig) {
    c.emulate_kafka = KafkaRelease::V3_0;
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("FindCoordinator v3: key type TRANSACTION", "KafkaApis.getCoordinator", OK,
            |ctx| find_coordinator(&ctx, 1, 3).await),
        row!("FindCoordinator v4: key type TRANSACTION", "KafkaApis.getCoordinator", OK,
            |ctx| find_coordinator(&ctx, 1, 4).await),
        row!("FindCoordinator v3: an unknown key type is INVALID_REQUEST",
            "KafkaApis.handleFindCoordinatorRequest", Got::Code(42),
            |ctx| find_coordinator(&ctx, 2, 3).await),
        row!("InitProducerId: a timeout above transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT",
            "TransactionStateManager.validateTransactionTimeoutMs", Got::Code(50),
            |ctx| Got::Code(init_with(&ctx, 900_001, 4).await.0)),
        row!("InitProducerId: a new transactional id starts at epoch 0, the next call bumps it",
            "TransactionCoordinator.handleInitProducerId", Got::Value(1),
            |ctx| {
                let first = init(&ctx).await;
                let second = init(&ctx).await;
                if first.0 != second.0 || first.1 != 0 {
                    return Got::Answer(format!("{first:?} then {second:?}"));
                }
                Got::Value(i64::from(second.1))
            }),
        row!("AddPartitionsToTxn: an unknown partition is UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED",
            "KafkaApis.handleAddPartitionsToTxnRequest", Got::Answer("[55, 3]".into()),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let producer = init(&ctx).await;
                Got::Answer(format!("{:?}", add(&ctx, producer, &[(&t, 0), (&t, 7)], 3).await))
            }),
        row!("AddPartitionsToTxn: another producer id is INVALID_PRODUCER_ID_MAPPING",
            "TransactionCoordinator.handleAddPartitionsToTransaction", Got::Code(49),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let (pid, epoch) = init(&ctx).await;
                Got::Code(add(&ctx, (pid + 1, epoch), &[(&t, 0)], 3).await[0])
            }),
        row!("AddPartitionsToTxn v3: an old epoch is PRODUCER_FENCED",
            "TransactionCoordinator.handleAddPartitionsToTransaction", Got::Code(90),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let (pid, _) = init(&ctx).await;
                let (_, epoch) = init(&ctx).await;
                Got::Code(add(&ctx, (pid, epoch - 1), &[(&t, 0)], 3).await[0])
            }),
        row!("AddPartitionsToTxn v1: an old epoch is INVALID_PRODUCER_EPOCH",
            "KafkaApis.handleAddPartitionsToTxnRequest (PRODUCER_FENCED below v2)", Got::Code(47),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let (pid, _) = init(&ctx).await;
                let (_, epoch) = init(&ctx).await;
                Got::Code(add(&ctx, (pid, epoch - 1), &[(&t, 0)], 1).await[0])
            }),
        row!("EndTxn without an open transaction is INVALID_TXN_STATE",
            "TransactionCoordinator.endTransaction", Got::Code(48),
            |ctx| {
                let producer = init(&ctx).await;
                Got::Code(end(&ctx, producer, true, 3).await)
            }),
        row!("EndTxn: a retried commit succeeds, an abort after it is INVALID_TXN_STATE",
            "TransactionCoordinator.endTransaction", Got::Answer("[0, 0, 48]".into()),
            |ctx| {
                let (_, producer) = open_transaction(&ctx).await;
                let codes = [
                    end(&ctx, producer, true, 3).await,
                    end(&ctx, producer, true, 3).await,
                    end(&ctx, producer, false, 3).await,
                ];
                Got::Answer(format!("{codes:?}"))
            }),
        row!("Produce v9: a transactional batch to a partition not in the transaction is INVALID_TXN_STATE",
            "ReplicaManager.appendRecords (KIP-890 verification, TRANSACTION_ABORTABLE below v11)", Got::Code(48),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let producer = init(&ctx).await;
                produce(&ctx, &t, batch_of(producer, 0, 3, true), 9).await
            }),
        row!("Produce v11: a transactional batch to a partition not in the transaction is TRANSACTION_ABORTABLE",
            "ReplicaManager.appendRecords (produceRequestVersionToTransactionSupportedOperation)", Got::Code(120),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let producer = init(&ctx).await;
                produce(&ctx, &t, batch_of(producer, 0, 3, true), 11).await
            }),
        row!("Produce, Kafka 3.0: a transactional batch is not verified with the coordinator",
            "ReplicaManager.appendRecords (transaction.partition.verification.enable from 3.6)", OK, Some(emulate_3_0),
            |ctx| {
                let t = topic(&ctx, 1).await;
                let producer = init(&ctx).await;
                produce(&ctx, &t, batch_of(producer, 0, 3, true), 9).await
            }),
        row!("Produce: a plain batch from a producer with a transaction open in the partition is INVALID_TXN_STATE",
            "ProducerAppendInfo.appendDataBatch (Expected transactional write)", Got::Code(48),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                produce(&ctx, &t, batch_of(producer, 3, 1, false), 9).await
            }),
        row!("Fetch read_committed stops at the last stable offset; read_uncommitted reads on",
            "UnifiedLog.read (FetchIsolation.TXN_COMMITTED)",
            Got::Answer("lso 3 end 3 aborted Some([]) | lso 3 end 6 aborted None".into()),
            |ctx| {
                let (t, _) = open_transaction(&ctx).await;
                Got::Answer(format!("{} | {}", fetch(&ctx, &t, 1).await, fetch(&ctx, &t, 0).await))
            }),
        row!("Fetch read_committed after an abort names the aborted transaction",
            "UnifiedLog.collectAbortedTransactions", Got::Answer("lso 7 end 7 aborted [3]".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(end(&ctx, producer, false, 3).await, 0);
                let got = fetch(&ctx, &t, 1).await;
                Got::Answer(got.replace(&format!("({}, 3)", producer.0), "3").replace("Some(", "").replace("])", "]"))
            }),
        row!("ListOffsets LATEST: the last stable offset at read_committed, the high watermark otherwise",
            "Partition.fetchOffsetForTimestamp", Got::Answer("[Value(3), Value(6)]".into()),
            |ctx| {
                let (t, _) = open_transaction(&ctx).await;
                let got = [list_latest(&ctx, &t, 1).await, list_latest(&ctx, &t, 0).await];
                Got::Answer(format!("{got:?}"))
            }),
        row!("InitProducerId fences an open transaction: CONCURRENT_TRANSACTIONS, the transaction aborted, then epoch + 2",
            "TransactionCoordinator.handleInitProducerId (prepareFenceProducerEpoch)",
            Got::Answer("51, lso 7 end 7, epoch +2, old producer 47".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                let (code, _, _) = init_with(&ctx, 60_000, 4).await;
                let read = fetch(&ctx, &t, 1).await;
                let read = read.split(" aborted").next().unwrap_or_default().to_string();
                let (_, epoch) = init(&ctx).await;
                let old = produce(&ctx, &t, batch_of(producer, 3, 1, true), 9).await;
                Got::Answer(format!("{code}, {read}, epoch +{}, old producer {old:?}", epoch - producer.1)
                    .replace("Code(", "").replace(')', ""))
            }),
        row!("InitProducerId v4 naming the producer's epoch bumps it; a retry of that bump answers the same epoch",
            "TransactionMetadata.prepareIncrementProducerEpoch (expectedEpoch == lastProducerEpoch)",
            Got::Answer("(0, 1) (0, 1) (90, -1)".into()),
            |ctx| {
                let (pid, epoch) = init(&ctx).await;
                let first = bump(&ctx, (pid, epoch)).await;
                let retry = bump(&ctx, (pid, epoch)).await;
                let stale = bump(&ctx, (pid + 1, epoch)).await;
                Got::Answer(format!("{first:?} {retry:?} {stale:?}"))
            }),
        row!("EndTxn with an empty transactional id is INVALID_REQUEST",
            "TransactionCoordinator.endTransaction", Got::Code(42),
            |ctx| {
                let req = EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_static_str("")))
                    .with_producer_id(ProducerId(1))
                    .with_committed(true);
                Got::Code(ctx.ask(&req, 3).await.expect("EndTxn").error_code)
            }),
        row!("Produce v9 refused by the transaction verification: log start -1 and the verification's message",
            "ReplicaManager.handleProduceAppend (postVerificationCallback)",
            Got::Answer("48 -1 Some(\"Partition was not added to the transaction\")".into()),
            |ctx| {
                let t = topic(&ctx, 1).await;
                common::produce(&ctx.m, &t, 0, common::batch(3, crate::produce::support::now_ms())).await;
                let producer = init(&ctx).await;
                Got::Answer(produce_answer(&ctx, &t, batch_of(producer, 0, 3, true)).await)
            }),
        row!("Produce: transactional batches of two producers in one request are INVALID_PRODUCER_ID_MAPPING, every partition",
            "ReplicaManager.handleProduceAppend (transactionalProducerInfo.size > 1)", Got::Answer("[49, 49]".into()),
            |ctx| {
                use kafka_protocol::messages::produce_request::PartitionProduceData;
                let t = topic(&ctx, 2).await;
                let (pid, epoch) = init(&ctx).await;
                let mut req = common::produce_request(&t, 0, batch_of((pid, epoch), 0, 1, true), -1)
                    .with_transactional_id(Some(tid(&ctx)));
                req.topic_data[0].partition_data.push(
                    PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(batch_of((pid + 1, epoch), 0, 1, true))),
                );
                let r = ctx.ask(&req, 9).await.expect("Produce");
                let codes: Vec<i16> = r.responses[0].partition_responses.iter().map(|p| p.error_code).collect();
                Got::Answer(format!("{codes:?}"))
            }),
        row!("Produce: a plain batch out of sequence from a producer with a transaction open is OUT_OF_ORDER_SEQUENCE_NUMBER first",
            "ProducerAppendInfo.appendDataBatch (maybeValidateDataBatch before the transaction check)", Got::Code(45),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                produce(&ctx, &t, batch_of(producer, 7, 1, false), 9).await
            }),
    ]
}
