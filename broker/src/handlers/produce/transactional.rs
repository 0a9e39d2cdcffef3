//! The transaction rules of Produce: one transactional producer per request, the
//! coordinator's verification of a transactional batch's partition before the append
//! (KIP-890, from Kafka 3.6), and the checks of the append itself under the partition's
//! producers lock.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use kmirror_wire::batch::BatchView;

use super::validate::Failure;
use crate::state::Broker;
use crate::topics::Topic;

/// A transaction's producer id: the whole request fails INVALID_PRODUCER_ID_MAPPING when
/// its transactional batches name more than one. Kafka: ReplicaManager.handleProduceAppend.
pub(super) fn one_transactional_producer(req: &ProduceRequest) -> Option<Failure> {
    let mut pids = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .filter(|r| r.len() >= kmirror_wire::batch::HEADER_LEN)
        .filter_map(|r| BatchView::parse(r, 0).ok())
        .filter(|b| b.is_transactional())
        .map(|b| b.producer_id());
    let first = pids.next()?;
    pids.any(|pid| pid != first).then(|| {
        Failure::told(
            ResponseError::InvalidProducerIdMapping,
            "Transactional records contained more than one producer ID".into(),
        )
    })
}

/// Whether the partition is in the open transaction of a transactional batch's producer.
/// From Kafka 3.6 (`transaction.partition.verification.enable`, KIP-890) the leader asks
/// the coordinator before anything else of the append, unless the producer already has a
/// transaction open in the partition (Kafka: ReplicaManager.handleProduceAppend,
/// UnifiedLog.maybeStartTransactionVerification), and answers the coordinator's verdict
/// as ReplicaManager's postVerificationCallback does, before the append (log start -1).
pub(super) fn verify_transaction(
    broker: &Broker,
    (topic, partition): (&Topic, &crate::topics::Partition),
    batch: &[u8],
    (transactional_id, version): (Option<&str>, i16),
) -> Result<(), Failure> {
    let Ok(view) = BatchView::parse(batch, 0) else {
        return Ok(());
    };
    if !view.is_transactional()
        || broker
            .check_leader(topic, partition.index, None, true)
            .is_err()
    {
        // The append refuses it (not the leader), with the same answer.
        return Ok(());
    }
    let open_here = partition
        .producers
        .lock()
        .expect("producers lock")
        .txns
        .is_ongoing(view.producer_id());
    let verdict = verify_with_coordinator(
        broker,
        &view,
        transactional_id,
        (&topic.name, partition.index),
        open_here,
    );
    verdict.map_err(|e| match e {
        ResponseError::TransactionAbortable if version < 11 => Failure::told(
            ResponseError::InvalidTxnState,
            "Partition was not added to the transaction".into(),
        ),
        ResponseError::ProducerFenced => (
            ResponseError::InvalidProducerEpoch,
            "The producer was fenced.".into(),
        )
            .into(),
        ResponseError::ConcurrentTransactions => Failure::told(
            ResponseError::NotEnoughReplicas,
            "Unable to verify the partition has been added to the transaction. Underlying error: CONCURRENT_TRANSACTIONS".into(),
        ),
        e => (e, format!("The transaction verification failed: {e}.")).into(),
    })
}

/// The coordinator's verdict on a transactional batch (Ok without asking when the
/// producer has a transaction open in the partition, or the release does not verify).
fn verify_with_coordinator(
    broker: &Broker,
    view: &BatchView<'_>,
    transactional_id: Option<&str>,
    (topic, index): (&str, i32),
    open_here: bool,
) -> Result<(), ResponseError> {
    let verifies = broker.versions.release() >= crate::versions::KafkaRelease::V3_6;
    if open_here || !verifies {
        return Ok(());
    }
    let producer = crate::transactions::Producer {
        transactional_id: transactional_id.unwrap_or_default(),
        producer_id: view.producer_id(),
        producer_epoch: view.producer_epoch(),
    };
    broker.transactions.verify(producer, (topic, index))
}

/// The transaction checks of the append itself, under the partition's producers lock so
/// that no marker slips in between: a transactional batch verified before must still
/// belong to an open transaction (Kafka: UnifiedLog.analyzeAndValidateProducerState, the
/// verification guard: "Record was not part of an ongoing transaction"), and a producer
/// with a transaction open here may not write outside it (Kafka:
/// ProducerAppendInfo.appendDataBatch, "Expected transactional write"), checked after the
/// epoch and sequence. Both INVALID_TXN_STATE.
pub(super) fn transaction_state(
    broker: &Broker,
    producers: &crate::producers::PartitionProducerState,
    view: &BatchView<'_>,
    transactional_id: Option<&str>,
    (topic, index): (&str, i32),
) -> Result<(), Failure> {
    let pid = view.producer_id();
    let open_here = pid >= 0 && producers.txns.is_ongoing(pid);
    if view.is_transactional() {
        return verify_with_coordinator(broker, view, transactional_id, (topic, index), open_here)
            .map_err(|_| {
                let why = "Record was not part of an ongoing transaction".to_string();
                (ResponseError::InvalidTxnState, why).into()
            });
    }
    if open_here {
        let why = format!("Expected transactional write from producer {pid} in {topic}-{index}.");
        return Err((ResponseError::InvalidTxnState, why).into());
    }
    Ok(())
}
