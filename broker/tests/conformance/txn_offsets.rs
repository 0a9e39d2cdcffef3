//! Transactional offset commits (AddOffsetsToTxn, TxnOffsetCommit): the group must be in
//! the transaction, its offsets wait for the transaction's end, and what a read of the
//! group's offsets sees meanwhile (KafkaApis, GroupCoordinatorService,
//! OffsetMetadataManager).

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::row;
use crate::common;
use crate::harness::{Ctx, Got, Row};
use crate::transactions::{emulate_3_0, end, init, open_transaction, tid};

const OK: Got = Got::Code(0);

fn group(ctx: &Ctx) -> GroupId {
    GroupId(StrBytes::from_string(ctx.topic("g")))
}

async fn add_offsets(ctx: &Ctx, (pid, epoch): (i64, i16), version: i16) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(tid(ctx))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(group(ctx));
    ctx.ask(&req, version)
        .await
        .expect("AddOffsetsToTxn")
        .error_code
}

/// TxnOffsetCommit of offset `offset` for partition 0 of `t`: its code.
async fn txn_commit(
    ctx: &Ctx,
    (pid, epoch): (i64, i16),
    t: &str,
    offset: i64,
    generation: i32,
    version: i16,
) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(tid(ctx))
        .with_group_id(group(ctx))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(generation)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(common::name(t))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r = ctx.ask(&req, version).await.expect("TxnOffsetCommit");
    r.topics[0].partitions[0].error_code
}

/// A plain (simple, generation -1) OffsetCommit of `offset` for partition 0 of `t`.
async fn plain_commit(ctx: &Ctx, t: &str, offset: i64) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(group(ctx))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(common::name(t))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r = ctx.ask(&req, 8).await.expect("OffsetCommit");
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "plain commit");
}

/// OffsetFetch v7 of partition 0 of `t` for the row's group: (error, offset).
async fn committed(ctx: &Ctx, t: &str, require_stable: bool) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let req = OffsetFetchRequest::default()
        .with_group_id(group(ctx))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(common::name(t))
            .with_partition_indexes(vec![0])]));
    let r = ctx.ask(&req, 7).await.expect("OffsetFetch");
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// A second transactional producer of the row, its transaction holding offset `offset` of
/// partition 0 of `t` for the row's group: its id and (producer id, epoch).
async fn second_producer(ctx: &Ctx, t: &str, offset: i64) -> (TransactionalId, (i64, i16)) {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let id = TransactionalId(StrBytes::from_string(ctx.topic("tx2")));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(id.clone()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = ctx.ask(&init, 4).await.expect("InitProducerId");
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(id.clone())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(group(ctx));
    assert_eq!(
        ctx.ask(&add, 3).await.expect("AddOffsetsToTxn").error_code,
        0
    );
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(id.clone())
        .with_group_id(group(ctx))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(common::name(t))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r = ctx.ask(&commit, 3).await.expect("TxnOffsetCommit");
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    (id, (pid, epoch))
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("TxnOffsetCommit v3 for a group not added to the transaction is INVALID_TXN_STATE",
            "GroupCoordinatorService.commitTransactionalOffsets (verification)", Got::Code(48),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                Got::Code(txn_commit(&ctx, producer, &t, 1, -1, 3).await)
            }),
        row!("TxnOffsetCommit v4 for a group not added to the transaction is TRANSACTION_ABORTABLE",
            "GroupCoordinatorService.commitTransactionalOffsets (txnOffsetCommitRequestVersionToTransactionSupportedOperation)", Got::Code(120),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                Got::Code(txn_commit(&ctx, producer, &t, 1, -1, 4).await)
            }),
        row!("TxnOffsetCommit with a generation for a group that does not exist is ILLEGAL_GENERATION",
            "OffsetMetadataManager.validateTransactionalOffsetCommit", Got::Code(22),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                Got::Code(txn_commit(&ctx, producer, &t, 1, 4, 3).await)
            }),
        row!("AddOffsetsToTxn v1 with an old epoch is INVALID_PRODUCER_EPOCH",
            "KafkaApis.handleAddOffsetsToTxnRequest (PRODUCER_FENCED below v2)", Got::Code(47),
            |ctx| {
                let (pid, _) = init(&ctx).await;
                let (_, epoch) = init(&ctx).await;
                Got::Code(add_offsets(&ctx, (pid, epoch - 1), 1).await)
            }),
        row!("A transactional offset is hidden until the commit marker; require_stable sees UNSTABLE_OFFSET_COMMIT",
            "OffsetMetadataManager.fetchOffsets, replayEndTransactionMarker",
            Got::Answer("pending (0, -1) stable (88, -1) committed (0, 2)".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                assert_eq!(txn_commit(&ctx, producer, &t, 2, -1, 3).await, 0);
                let pending = committed(&ctx, &t, false).await;
                let stable = committed(&ctx, &t, true).await;
                assert_eq!(end(&ctx, producer, true, 3).await, 0);
                let after = committed(&ctx, &t, true).await;
                Got::Answer(format!("pending {pending:?} stable {stable:?} committed {after:?}"))
            }),
        row!("Aborting drops the transaction's offsets",
            "OffsetMetadataManager.replayEndTransactionMarker", Got::Answer("(0, -1)".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                assert_eq!(txn_commit(&ctx, producer, &t, 2, -1, 3).await, 0);
                assert_eq!(end(&ctx, producer, false, 3).await, 0);
                Got::Answer(format!("{:?}", committed(&ctx, &t, true).await))
            }),
        row!("A plain commit after a transactional one wins at the commit marker",
            "OffsetMetadataManager.replayEndTransactionMarker (the newer record stays)",
            Got::Answer("(0, 5)".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                assert_eq!(txn_commit(&ctx, producer, &t, 2, -1, 3).await, 0);
                plain_commit(&ctx, &t, 5).await;
                assert_eq!(end(&ctx, producer, true, 3).await, 0);
                Got::Answer(format!("{:?}", committed(&ctx, &t, true).await))
            }),
        row!("TxnOffsetCommit with an empty group id is INVALID_GROUP_ID, before the verification",
            "GroupCoordinatorService.commitTransactionalOffsets", Got::Code(24),
            |ctx| {
                use kafka_protocol::messages::txn_offset_commit_request::{
                    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
                };
                let (t, (pid, epoch)) = open_transaction(&ctx).await;
                let req = TxnOffsetCommitRequest::default()
                    .with_transactional_id(tid(&ctx))
                    .with_group_id(GroupId(StrBytes::from_static_str("")))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_generation_id(-1)
                    .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                        .with_name(common::name(&t))
                        .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1)])]);
                let r = ctx.ask(&req, 3).await.expect("TxnOffsetCommit");
                Got::Code(r.topics[0].partitions[0].error_code)
            }),
        row!("TxnOffsetCommit, Kafka 3.0: the group is not verified with the transaction coordinator",
            "ReplicaManager.maybeStartTransactionVerificationForPartitions (from 3.6)", OK, Some(emulate_3_0),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                Got::Code(txn_commit(&ctx, producer, &t, 1, -1, 3).await)
            }),
        row!("OffsetDelete drops a pending transactional offset: the commit marker does not bring it back",
            "OffsetMetadataManager.replay (a tombstone removes the pending offsets)", Got::Answer("(0, -1)".into()),
            |ctx| {
                use kafka_protocol::messages::offset_delete_request::{
                    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
                };
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                assert_eq!(txn_commit(&ctx, producer, &t, 2, -1, 3).await, 0);
                let req = OffsetDeleteRequest::default()
                    .with_group_id(group(&ctx))
                    .with_topics(vec![OffsetDeleteRequestTopic::default()
                        .with_name(common::name(&t))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()
                            .with_partition_index(0)])]);
                let r = ctx.ask(&req, 0).await.expect("OffsetDelete");
                assert_eq!(r.error_code, 0, "OffsetDelete");
                assert_eq!(end(&ctx, producer, true, 3).await, 0);
                Got::Answer(format!("{:?}", committed(&ctx, &t, true).await))
            }),
        row!("Of two transactions' offsets for one partition, the one written last stays, whichever commits last",
            "OffsetMetadataManager.replayEndTransactionMarker (the record written last wins)",
            Got::Answer("(0, 5)".into()),
            |ctx| {
                let (t, producer) = open_transaction(&ctx).await;
                assert_eq!(add_offsets(&ctx, producer, 3).await, 0);
                assert_eq!(txn_commit(&ctx, producer, &t, 2, -1, 3).await, 0);
                let (id, (pid, epoch)) = second_producer(&ctx, &t, 5).await;
                let end_second = EndTxnRequest::default()
                    .with_transactional_id(id)
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(true);
                assert_eq!(ctx.ask(&end_second, 3).await.expect("EndTxn").error_code, 0);
                assert_eq!(end(&ctx, producer, true, 3).await, 0);
                Got::Answer(format!("{:?}", committed(&ctx, &t, true).await))
            }),
    ]
}
