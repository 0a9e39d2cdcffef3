//! The transaction APIs a client calls: InitProducerId with a transactional id,
//! AddPartitionsToTxn (v0-3, the client form), AddOffsetsToTxn, TxnOffsetCommit and EndTxn,
//! on the transaction coordinator
//! (the same node as the group coordinator: the lowest live one; elsewhere
//! NOT_COORDINATOR). Authorization (WRITE on the transactional id, WRITE on each topic) is
//! checked by [`crate::authz::transactions`] before these run.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use crate::state::{now_ms, Broker};
use crate::transactions::{self, End, Init, Producer};
use crate::versions::KafkaRelease;

/// Whether this node coordinates transactions (the lowest live node). Kafka:
/// TransactionCoordinator (NOT_COORDINATOR when the id's `__transaction_state` partition is
/// led elsewhere).
pub(crate) fn coordinates(broker: &Broker) -> bool {
    broker.config.node_id == broker.cluster.coordinator().node_id
}

fn init_error(code: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// InitProducerId with a transactional id. Kafka: KafkaApis.handleInitProducerIdRequest,
/// TransactionCoordinator.handleInitProducerId.
pub async fn init_producer_id(
    broker: &Broker,
    req: &InitProducerIdRequest,
    version: i16,
    transactional_id: &str,
) -> InitProducerIdResponse {
    let expected = if version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    // Kafka: KafkaApis.handleInitProducerIdRequest (a half-set id and epoch).
    if (expected.0 == -1) != (expected.1 == -1) {
        return init_error(ResponseError::InvalidRequest);
    }
    // Kafka: the id and timeout are refused before the coordinator is looked up.
    if let Some(e) =
        crate::transactions::coordinator::init_refusal(transactional_id, req.transaction_timeout_ms)
    {
        return init_error(e);
    }
    if !coordinates(broker) {
        return init_error(ResponseError::NotCoordinator);
    }
    let step = broker.transactions.init(
        transactional_id,
        req.transaction_timeout_ms,
        expected,
        now_ms(),
        || {
            broker.producer_ids.allocate().map_err(|e| {
                tracing::error!(error = %e, "Cannot allocate a producer id.");
                ResponseError::CoordinatorLoadInProgress
            })
        },
    );
    match step {
        Ok(Init::Ready {
            producer_id,
            producer_epoch,
        }) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        Ok(Init::Fenced(markers)) => {
            tracing::info!(
                transactional_id,
                producer_id = markers.producer_id,
                "InitProducerId aborts the open transaction of the fenced producer."
            );
            transactions::finish(broker, markers).await;
            init_error(ResponseError::ConcurrentTransactions)
        }
        // Kafka: KafkaApis.handleInitProducerIdRequest answers PRODUCER_FENCED as
        // INVALID_PRODUCER_EPOCH to clients older than v4 (KIP-588).
        Err(e) => init_error(for_version(e, version, 4)),
    }
}

/// The error a pre-KIP-588 client understands for a fenced producer: PRODUCER_FENCED is
/// answered as INVALID_PRODUCER_EPOCH below `fenced_from`.
fn for_version(e: ResponseError, version: i16, fenced_from: i16) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < fenced_from {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// AddPartitionsToTxn v0-3; `refused` holds the partitions authorization or existence
/// refused, with their codes. Kafka: KafkaApis.handleAddPartitionsToTxnRequest: with any
/// refused partition nothing is added and the others answer OPERATION_NOT_ATTEMPTED.
pub fn add_partitions_to_txn(
    broker: &Broker,
    req: &AddPartitionsToTxnRequest,
    version: i16,
    refused: &[(String, i32, ResponseError)],
) -> AddPartitionsToTxnResponse {
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let code_of = |topic: &str, partition: i32, all: Option<ResponseError>| {
        refused
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, e)| *e)
            .or(all)
            .map_or(0, |e| e.code())
    };
    let all = if !refused.is_empty() {
        Some(ResponseError::OperationNotAttempted)
    } else if !coordinates(broker) {
        Some(ResponseError::NotCoordinator)
    } else {
        let producer = Producer {
            transactional_id: req.v3_and_below_transactional_id.0.as_str(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
        };
        broker
            .transactions
            .add_partitions(producer, wanted.iter().cloned(), now_ms())
            .err()
            .map(|e| for_version(e, version, 2))
    };
    answer(req, |topic, partition| code_of(topic, partition, all))
}

/// The v0-3 answer to `req`: each partition with `code(topic, partition)`.
pub fn answer(
    req: &AddPartitionsToTxnRequest,
    code: impl Fn(&str, i32) -> i16,
) -> AddPartitionsToTxnResponse {
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code(t.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// EndTxn. Kafka: TransactionCoordinator.handleEndTransaction. Kafka answers once its
/// PrepareCommit/PrepareAbort is durable and writes the markers after; here the markers
/// are written before the answer (a prepared state is kept too, see `recover`), so a
/// client reading right after its commit sees it.
pub async fn end_txn(broker: &Broker, req: &EndTxnRequest, version: i16) -> EndTxnResponse {
    if !coordinates(broker) {
        return EndTxnResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    let producer = Producer {
        transactional_id: req.transactional_id.0.as_str(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
    };
    let code = match broker.transactions.end(producer, req.committed, now_ms()) {
        Ok(End::Done) => 0,
        Ok(End::Write(markers)) => {
            transactions::finish(broker, markers).await;
            0
        }
        Err(e) => for_version(e, version, 2).code(),
    };
    EndTxnResponse::default().with_error_code(code)
}

/// AddOffsetsToTxn: the group's offsets join the transaction. Kafka:
/// KafkaApis.handleAddOffsetsToTxnRequest, then AddPartitionsToTxn's rules.
pub fn add_offsets_to_txn(
    broker: &Broker,
    req: &AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    if !coordinates(broker) {
        let code = ResponseError::NotCoordinator.code();
        return AddOffsetsToTxnResponse::default().with_error_code(code);
    }
    let producer = Producer {
        transactional_id: req.transactional_id.0.as_str(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
    };
    let code = broker
        .transactions
        .add_group(producer, req.group_id.0.as_str(), now_ms())
        .map_or_else(|e| for_version(e, version, 2).code(), |()| 0);
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// TxnOffsetCommit; `refused` answers the partitions authorization or existence refused.
/// From Kafka 3.6 the group must be in the producer's transaction (Kafka 4:
/// GroupCoordinatorService.commitTransactionalOffsets verifies it first: not added
/// INVALID_TXN_STATE below v4, TRANSACTION_ABORTABLE at v4; fenced INVALID_PRODUCER_EPOCH;
/// other coordinator errors as they are), then the coordinator must have loaded its
/// groups, then the group decides.
pub fn txn_offset_commit(
    broker: &Broker,
    req: &TxnOffsetCommitRequest,
    version: i16,
    refused: &dyn Fn(&str, i32) -> Option<i16>,
) -> TxnOffsetCommitResponse {
    let producer = Producer {
        transactional_id: req.transactional_id.0.as_str(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
    };
    let verifies = broker.versions.release() >= KafkaRelease::V3_6;
    let verify = || -> Result<(), i16> {
        if !coordinates(broker) {
            return Err(ResponseError::NotCoordinator.code());
        }
        if verifies {
            let group = req.group_id.0.as_str();
            broker
                .transactions
                .verify_group(producer, group)
                .map_err(|e| match e {
                    ResponseError::TransactionAbortable if version < 4 => {
                        ResponseError::InvalidTxnState
                    }
                    ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
                    e => e,
                })
                .map_err(|e| e.code())?;
        }
        if std::time::Instant::now() < broker.groups_loading_until {
            // KafkaApis.handleTxnOffsetCommitRequest: COORDINATOR_NOT_AVAILABLE below v2.
            let loading = if version < 2 {
                ResponseError::CoordinatorNotAvailable
            } else {
                ResponseError::CoordinatorLoadInProgress
            };
            return Err(loading.code());
        }
        Ok(())
    };
    broker.groups.txn_offset_commit(req, refused, &verify)
}

/// The answer to `req`: each partition with `code(topic, partition)`.
pub fn txn_offset_answer(
    req: &TxnOffsetCommitRequest,
    code: impl Fn(&str, i32) -> i16,
) -> TxnOffsetCommitResponse {
    use kafka_protocol::messages::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(t.name.0.as_str(), p.partition_index))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
