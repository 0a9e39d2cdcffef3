//! What a restarted broker makes of the transactions the last run left (Kafka:
//! TransactionStateManager loads the transaction log, TransactionCoordinator sends the
//! markers of prepared transactions again): a prepared commit is written and commits; an
//! open transaction holding group offsets (kept in memory) is aborted and its producer
//! fenced; a transaction a partition holds open that the coordinator's state does not
//! have (its file lost) is aborted.

mod common;

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::batch;
use kmirror_wire::messenger::Messenger;

const TOPIC: &str = "t";
const TXN: &str = "restart-txn";

fn tid() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(TXN))
}

/// Now, for record timestamps: ancient ones would have the log roll a segment at the next
/// append (segment.ms), and a fetch reads one segment at a time, as Kafka's does.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A transactional batch of 3 records of the producer, from sequence 0.
fn transactional_batch(pid: i64, epoch: i16) -> Bytes {
    let mut raw = common::batch(3, now_ms()).to_vec();
    raw[21..23].copy_from_slice(&batch::attributes(0, false, true).to_be_bytes());
    raw[43..51].copy_from_slice(&pid.to_be_bytes());
    raw[51..53].copy_from_slice(&epoch.to_be_bytes());
    raw[53..57].copy_from_slice(&0i32.to_be_bytes());
    batch::update_crc(&mut raw);
    raw.into()
}

/// A topic with plain records at 0-2 and a transaction of the producer open at 3-5.
async fn open_transaction(m: &Messenger) -> (i64, i16) {
    common::create_topic(m, TOPIC, 1).await;
    common::produce(m, TOPIC, 0, common::batch(3, now_ms())).await;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid()))
        .with_transaction_timeout_ms(600_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = m.send_at(&init, 4).await.unwrap();
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(common::name(TOPIC))
            .with_partitions(vec![0])]);
    let r = m.send_at(&add, 3).await.unwrap();
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let produce = common::produce_request(TOPIC, 0, transactional_batch(pid, epoch), -1)
        .with_transactional_id(Some(tid()));
    let r = m.send_at(&produce, 9).await.unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    (pid, epoch)
}

/// Fetch v12 read_committed from 0: (last stable offset, high watermark, records sent up
/// to, aborted producer ids).
async fn read_committed(m: &Messenger) -> (i64, i64, i64, Vec<i64>) {
    let req = common::fetch_request(TOPIC, 0, 0, 0, 1 << 20).with_isolation_level(1);
    let r = m.send_at(&req, 12).await.unwrap();
    let p = &r.responses[0].partitions[0];
    let end = common::end_offset(p);
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| a.producer_id.0)
        .collect();
    (p.last_stable_offset, p.high_watermark, end, aborted)
}

async fn end_txn(m: &Messenger, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(tid())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    m.send_at(&req, 3).await.unwrap().error_code
}

/// Rewrites the coordinator's file with `f` applied to the transaction's state.
fn edit_state(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("transactions.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut state["transactions"][TXN]);
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
}

#[tokio::test]
async fn a_prepared_commit_is_written_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    let producer = open_transaction(&m).await;
    broker.shutdown().await.unwrap();
    // As if the broker stopped after writing PrepareCommit and before any marker.
    edit_state(dir.path(), |t| t["state"] = "PrepareCommit".into());
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    assert_eq!(read_committed(&m).await, (7, 7, 7, vec![]));
    assert_eq!(end_txn(&m, producer, true).await, 0, "a retried commit");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_transaction_with_group_offsets_is_aborted_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    let (pid, epoch) = open_transaction(&m).await;
    let group = GroupId(StrBytes::from_static_str("g"));
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(tid())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(group.clone());
    assert_eq!(m.send_at(&add, 3).await.unwrap().error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(tid())
        .with_group_id(group)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(common::name(TOPIC))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(3)])]);
    let r = m.send_at(&commit, 3).await.unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    broker.shutdown().await.unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    assert_eq!(read_committed(&m).await, (7, 7, 7, vec![pid]));
    assert_eq!(
        end_txn(&m, (pid, epoch), true).await,
        kafka_protocol::error::ResponseError::ProducerFenced.code()
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_transaction_the_coordinator_lost_is_aborted_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    let (pid, _) = open_transaction(&m).await;
    assert_eq!(read_committed(&m).await, (3, 6, 3, vec![]));
    broker.shutdown().await.unwrap();
    std::fs::remove_file(dir.path().join("transactions.json")).unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    assert_eq!(read_committed(&m).await, (7, 7, 7, vec![pid]));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_transaction_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    let producer = open_transaction(&m).await;
    broker.shutdown().await.unwrap();
    let broker = common::start(dir.path()).await;
    let m = common::connect(&broker).await;
    assert_eq!(read_committed(&m).await, (3, 6, 3, vec![]));
    assert_eq!(end_txn(&m, producer, true).await, 0);
    assert_eq!(read_committed(&m).await, (7, 7, 7, vec![]));
    broker.shutdown().await.unwrap();
}
