//! The transaction tooling's reads (`kafka-transactions.sh`, KIP-664): DescribeProducers
//! (a partition's active producers, from its producer state), ListTransactions and
//! DescribeTransactions (the coordinator's transactional ids: on another node
//! ListTransactions lists none and DescribeTransactions answers NOT_COORDINATOR, as a Kafka
//! broker leading none of the ids' `__transaction_state` partitions does). Authorization is
//! the caller's ([`crate::authz::transactions`]).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::message;
use super::transactions::coordinates;
use crate::state::{now_ms, Broker};
use crate::transactions::coordinator::{TxnMeta, TxnState};

/// Kafka's name of a transaction state (TransactionState.name), as ListTransactions and
/// DescribeTransactions report it and ListTransactions filters by it.
pub fn state_name(state: TxnState) -> &'static str {
    match state {
        TxnState::Empty => "Empty",
        TxnState::Ongoing => "Ongoing",
        TxnState::PrepareCommit => "PrepareCommit",
        TxnState::PrepareAbort => "PrepareAbort",
        TxnState::CompleteCommit => "CompleteCommit",
        TxnState::CompleteAbort => "CompleteAbort",
    }
}

/// Every state name Kafka knows (TransactionState.fromName), whether or not this
/// coordinator reaches it: a filter naming one of these is not "unknown".
const KAFKA_STATE_NAMES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// One topic of a DescribeProducers request, whose partitions `refused` answers when the
/// topic may not be read (authorization, an invalid or unknown name).
/// Kafka: KafkaApis.handleDescribeProducersRequest, ReplicaManager.activeProducerState and
/// UnifiedLog.activeProducers.
pub fn describe_producers_topic(
    broker: &Broker,
    t: &describe_producers_request::TopicRequest,
    refused: Option<ResponseError>,
) -> TopicResponse {
    let name = t.name.as_str();
    // Kafka: KafkaApis.checkValidTopic (Topic.validate), then the metadata cache.
    let topic_error = match crate::topics::validate_name(name) {
        Err(e) => Some((ResponseError::InvalidTopicException, Some(e.to_string()))),
        Ok(()) => refused.map(|e| (e, None)),
    };
    let topic = broker.topics.get(name);
    let topic_error = topic_error.or_else(|| {
        topic
            .is_none()
            .then_some((ResponseError::UnknownTopicOrPartition, None))
    });
    let partitions = t
        .partition_indexes
        .iter()
        .map(|&index| {
            let failed = |code: ResponseError, text: Option<String>| {
                PartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code.code())
                    .with_error_message(text.and_then(message))
            };
            if let Some((code, text)) = &topic_error {
                return failed(*code, text.clone());
            }
            let topic = topic.as_ref().expect("known topic");
            // ReplicaManager.getPartitionOrError: a partition the topic lacks is unknown;
            // one this node holds no replica of, NOT_LEADER_OR_FOLLOWER (any replica
            // answers, not only the leader).
            let Some(partition) = topic.partition(index) else {
                return failed(ResponseError::UnknownTopicOrPartition, None);
            };
            if let Err(e) = broker.check_leader(topic, index, None, false) {
                return failed(e.code(), None);
            }
            let now = now_ms();
            let state = partition.producers.lock().expect("producer state lock");
            let active = state
                .entries()
                .filter(|(pid, _)| state.entry(*pid, now).is_some())
                .map(|(pid, e)| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(i32::from(e.epoch))
                        .with_last_sequence(e.last_seq())
                        .with_last_timestamp(e.last_timestamp)
                        .with_coordinator_epoch(e.coordinator_epoch)
                        .with_current_txn_start_offset(state.txns.open_since(pid).unwrap_or(-1))
                })
                .collect();
            PartitionResponse::default()
                .with_partition_index(index)
                .with_active_producers(active)
        })
        .collect();
    TopicResponse::default()
        .with_name(t.name.clone())
        .with_partitions(partitions)
}

/// Kafka: TransactionStateManager.listTransactionStates. `allowed` is the caller's
/// DESCRIBE on a transactional id (KafkaApis.handleListTransactionsRequest drops the rest).
pub fn list_transactions(
    broker: &Broker,
    req: &ListTransactionsRequest,
    allowed: impl Fn(&str) -> bool,
) -> ListTransactionsResponse {
    let known = |s: &StrBytes| KAFKA_STATE_NAMES.contains(&s.as_str());
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|s| !known(s))
        .cloned()
        .collect();
    let now = now_ms();
    let here = coordinates(broker);
    let include = |meta: &TxnMeta| {
        here && (req.producer_id_filters.is_empty()
            || req
                .producer_id_filters
                .contains(&ProducerId(meta.producer_id)))
            && (req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == state_name(meta.state)))
            && (req.duration_filter < 0 || now.saturating_sub(meta.start_ms) > req.duration_filter)
    };
    let states = broker
        .transactions
        .all()
        .into_iter()
        .filter(|(id, meta)| include(meta) && allowed(id))
        .map(|(id, meta)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(meta.producer_id))
                .with_transaction_state(StrBytes::from_static_str(state_name(meta.state)))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// Kafka: TransactionCoordinator.handleDescribeTransactions. `topic_allowed` is the caller's
/// DESCRIBE on a topic (KafkaApis.handleDescribeTransactionsRequest lists only those).
pub fn describe_transaction(
    broker: &Broker,
    transactional_id: &TransactionalId,
    topic_allowed: impl Fn(&str) -> bool,
) -> TransactionState {
    let state = TransactionState::default().with_transactional_id(transactional_id.clone());
    if transactional_id.is_empty() {
        return state.with_error_code(ResponseError::InvalidRequest.code());
    }
    // TransactionStateManager.getTransactionState: an id of a partition led elsewhere.
    if !coordinates(broker) {
        return state.with_error_code(ResponseError::NotCoordinator.code());
    }
    let Some(meta) = broker.transactions.get(transactional_id.as_str()) else {
        return state.with_error_code(ResponseError::TransactionalIdNotFound.code());
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &meta.partitions {
        if !topic_allowed(topic) {
            continue;
        }
        match topics.last_mut() {
            Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    state
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_transaction_state(StrBytes::from_static_str(state_name(meta.state)))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(meta.start_ms)
        .with_topics(topics)
}
