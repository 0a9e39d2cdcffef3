//! The transaction tooling's reads (KIP-664): DescribeProducers, ListTransactions and
//! DescribeTransactions, what they refuse and what they report.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::row;
use crate::common;
use crate::harness::{Ctx, Got, Row};
use crate::multinode::{connect_node, metadata, three_nodes};
use crate::transactions::{init, open_transaction, tid};

/// DescribeProducers v0 of one partition: (error, active producers as
/// (id, epoch, last sequence, coordinator epoch, open transaction's first offset)).
async fn producers(m: &kmirror_wire::messenger::Messenger, topic: &str, partition: i32) -> String {
    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(common::name(topic))
            .with_partition_indexes(vec![partition]),
    ]);
    let r = m.send_at(&req, 0).await.expect("DescribeProducers");
    let p = &r.topics[0].partitions[0];
    let active: Vec<_> = p
        .active_producers
        .iter()
        .map(|a| {
            (
                a.producer_id.0,
                a.producer_epoch,
                a.last_sequence,
                a.coordinator_epoch,
                a.current_txn_start_offset,
            )
        })
        .collect();
    format!("{} {active:?}", p.error_code)
}

/// ListTransactions v1 with these state filters: its unknown filters and what it lists,
/// as (state, producer id).
async fn list(ctx: &Ctx, states: &[&'static str], duration_filter: i64) -> String {
    let req = ListTransactionsRequest::default()
        .with_state_filters(
            states
                .iter()
                .map(|s| StrBytes::from_static_str(s))
                .collect(),
        )
        .with_duration_filter(duration_filter);
    let r = ctx.ask(&req, 1).await.expect("ListTransactions");
    let unknown: Vec<&str> = r.unknown_state_filters.iter().map(|s| s.as_str()).collect();
    let listed: Vec<_> = r
        .transaction_states
        .iter()
        .filter(|t| t.transactional_id == tid(ctx))
        .map(|t| (t.transaction_state.to_string(), t.producer_id.0))
        .collect();
    format!("{} {unknown:?} {listed:?}", r.error_code)
}

/// DescribeTransactions v0 of one id on `m`: (error, state, start time known, partitions).
async fn describe(m: &kmirror_wire::messenger::Messenger, id: TransactionalId) -> String {
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![id]);
    let r = m.send_at(&req, 0).await.expect("DescribeTransactions");
    let s = &r.transaction_states[0];
    let partitions: Vec<_> = s
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().copied())
        .collect();
    format!(
        "{} {} start {} {partitions:?}",
        s.error_code,
        s.transaction_state,
        if s.transaction_start_time_ms > 0 {
            "set"
        } else {
            "-1"
        }
    )
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("DescribeProducers: an open transaction's producer, its last sequence and first offset; none elsewhere",
            "UnifiedLog.activeProducers", Got::Answer("0 [(P, 0, 2, -1, 3)] | 0 []".into()),
            |ctx| {
                let (t, (pid, _)) = open_transaction(&ctx).await;
                common::create_topic(&ctx.m, &ctx.topic("other"), 1).await;
                let here = producers(&ctx.m, &t, 0).await.replace(&pid.to_string(), "P");
                Got::Answer(format!("{here} | {}", producers(&ctx.m, &ctx.topic("other"), 0).await))
            }),
        row!("DescribeProducers: an invalid topic name is INVALID_TOPIC_EXCEPTION, an unknown partition UNKNOWN_TOPIC_OR_PARTITION",
            "KafkaApis.handleDescribeProducersRequest (checkValidTopic), ReplicaManager.getPartitionOrError",
            Got::Answer("17 [] | 3 []".into()),
            |ctx| {
                let t = crate::transactions::topic(&ctx, 1).await;
                Got::Answer(format!("{} | {}", producers(&ctx.m, "bad/name", 0).await, producers(&ctx.m, &t, 5).await))
            }),
        row!("ListTransactions: state filters match Kafka's names; an unknown one is named back and matches nothing",
            "TransactionStateManager.listTransactionStates",
            Got::Answer("0 [] [(\"Ongoing\", P)] | 0 [] [] | 0 [\"Bogus\"] []".into()),
            |ctx| {
                let (_, (pid, _)) = open_transaction(&ctx).await;
                let got = [list(&ctx, &["Ongoing"], -1).await, list(&ctx, &["CompleteAbort", "Dead"], -1).await,
                    list(&ctx, &["Bogus"], -1).await];
                Got::Answer(got.join(" | ").replace(&pid.to_string(), "P"))
            }),
        row!("ListTransactions v1: a duration filter lists only transactions running longer",
            "TransactionStateManager.listTransactionStates (filterDurationMs)",
            Got::Answer("0 [] [] | 0 [] [(\"Ongoing\", P)]".into()),
            |ctx| {
                let (_, (pid, _)) = open_transaction(&ctx).await;
                let got = [list(&ctx, &[], 3_600_000).await, list(&ctx, &[], -1).await];
                Got::Answer(got.join(" | ").replace(&pid.to_string(), "P"))
            }),
        row!("DescribeTransactions: an id that never began a transaction is Empty with start -1; an empty id is INVALID_REQUEST; an unknown one TRANSACTIONAL_ID_NOT_FOUND",
            "TransactionCoordinator.handleDescribeTransactions",
            Got::Answer("0 Empty start -1 [] | 42  start -1 [] | 105  start -1 []".into()),
            |ctx| {
                init(&ctx).await;
                let got = [describe(&ctx.m, tid(&ctx)).await,
                    describe(&ctx.m, TransactionalId(StrBytes::from_static_str(""))).await,
                    describe(&ctx.m, TransactionalId(StrBytes::from_static_str("never-seen"))).await];
                Got::Answer(got.join(" | "))
            }),
        row!("DescribeTransactions: only the coordinator answers (NOT_COORDINATOR elsewhere), and ListTransactions elsewhere lists nothing",
            "TransactionStateManager.getTransactionState, listTransactionStates",
            Got::Answer("0 Empty start -1 [] 1 | 16  start -1 [] 0".into()),
            Some(three_nodes), |ctx| {
                init(&ctx).await;
                let t = crate::transactions::topic(&ctx, 1).await;
                let md = metadata(&ctx.m, &t).await;
                let listed = |m: kmirror_wire::messenger::Messenger| async move {
                    let r = m.send_at(&ListTransactionsRequest::default(), 0).await.expect("ListTransactions");
                    r.transaction_states.len()
                };
                let coordinator = format!("{} {}", describe(&ctx.m, tid(&ctx)).await, listed(ctx.connect().await).await);
                let other = format!("{} {}", describe(&connect_node(&md, 1).await, tid(&ctx)).await,
                    listed(connect_node(&md, 1).await).await);
                Got::Answer(format!("{coordinator} | {other}"))
            }),
    ]
}
