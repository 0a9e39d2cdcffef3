//! Authorization of the transaction APIs. Kafka: KafkaApis.handleInitProducerIdRequest
//! (in [`super::topics`]), handleAddPartitionsToTxnRequest and handleEndTxnRequest: WRITE
//! on the transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole
//! request; AddPartitionsToTxn then needs WRITE on each topic (TOPIC_AUTHORIZATION_FAILED)
//! and an existing partition (UNKNOWN_TOPIC_OR_PARTITION), and with any partition refused
//! adds none (the others OPERATION_NOT_ATTEMPTED).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::Guard;
use crate::acl::{op, resource};
use crate::handlers::transactions as handlers;
use crate::state::Broker;

/// Kafka: KafkaApis.handleAddPartitionsToTxnRequest (v0-3).
pub fn add_partitions_to_txn(
    g: &Guard<'_>,
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = req.v3_and_below_transactional_id.0.as_str();
    if !g.allows(op::WRITE, resource::TRANSACTIONAL_ID, id) {
        let denied = ResponseError::TransactionalIdAuthorizationFailed.code();
        return handlers::answer(&req, |_, _| denied);
    }
    let mut refused = Vec::new();
    for t in &req.v3_and_below_topics {
        let name = t.name.0.as_str();
        let allowed = g.allows_topic(op::WRITE, name);
        let topic = broker.topics.get(name);
        for p in &t.partitions {
            let code = if !allowed {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if topic.as_ref().and_then(|t| t.partition(*p)).is_none() {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                None
            };
            if let Some(code) = code {
                refused.push((name.to_string(), *p, code));
            }
        }
    }
    handlers::add_partitions_to_txn(broker, &req, version, &refused)
}

/// Kafka: KafkaApis.handleEndTxnRequest.
pub async fn end_txn(
    g: &Guard<'_>,
    broker: &Broker,
    req: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    if !g.allows(
        op::WRITE,
        resource::TRANSACTIONAL_ID,
        req.transactional_id.0.as_str(),
    ) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    handlers::end_txn(broker, &req, version).await
}

/// Kafka: KafkaApis.handleAddOffsetsToTxnRequest (WRITE on the transactional id, then
/// READ on the group: GROUP_AUTHORIZATION_FAILED).
pub fn add_offsets_to_txn(
    g: &Guard<'_>,
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    match offsets_refusal(g, &req.transactional_id, &req.group_id) {
        Some(e) => AddOffsetsToTxnResponse::default().with_error_code(e.code()),
        None => handlers::add_offsets_to_txn(broker, &req, version),
    }
}

/// Kafka: KafkaApis.handleTxnOffsetCommitRequest (WRITE on the transactional id, READ on
/// the group: every partition refused; then READ on each topic and an existing partition).
pub fn txn_offset_commit(
    g: &Guard<'_>,
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    if let Some(e) = offsets_refusal(g, &req.transactional_id, &req.group_id) {
        return handlers::txn_offset_answer(&req, |_, _| e.code());
    }
    let readable: std::collections::HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|t| g.allows_topic(op::READ, t))
        .collect();
    let refused = |topic: &str, partition: i32| {
        if !readable.contains(topic) {
            Some(ResponseError::TopicAuthorizationFailed.code())
        } else if broker
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition))
            .is_none()
        {
            Some(ResponseError::UnknownTopicOrPartition.code())
        } else {
            None
        }
    };
    handlers::txn_offset_commit(broker, &req, version, &refused)
}

/// What AddOffsetsToTxn and TxnOffsetCommit both check first: WRITE on the transactional
/// id, then READ on the group.
fn offsets_refusal(
    g: &Guard<'_>,
    transactional_id: &TransactionalId,
    group: &GroupId,
) -> Option<ResponseError> {
    if !g.allows(
        op::WRITE,
        resource::TRANSACTIONAL_ID,
        transactional_id.0.as_str(),
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !g.allows_group(op::READ, group.0.as_str()) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    }
}

/// Kafka: KafkaApis.handleDescribeProducersRequest (READ on each topic, else
/// TOPIC_AUTHORIZATION_FAILED for its partitions).
pub fn describe_producers(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let refused = (!g.allows_topic(op::READ, t.name.as_str()))
                .then_some(ResponseError::TopicAuthorizationFailed);
            crate::handlers::txn_admin::describe_producers_topic(broker, t, refused)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// Kafka: KafkaApis.handleListTransactionsRequest (only the transactional ids the caller
/// may DESCRIBE are listed).
pub fn list_transactions(
    g: &Guard<'_>,
    broker: &Broker,
    req: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    crate::handlers::txn_admin::list_transactions(broker, &req, |id| {
        g.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, id)
    })
}

/// Kafka: KafkaApis.handleDescribeTransactionsRequest (DESCRIBE on each transactional id,
/// else TRANSACTIONAL_ID_AUTHORIZATION_FAILED; only the topics the caller may DESCRIBE).
pub fn describe_transactions(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            if g.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, id.as_str()) {
                crate::handlers::txn_admin::describe_transaction(broker, id, |topic| {
                    g.allows_topic(op::DESCRIBE, topic)
                })
            } else {
                describe_transactions_response::TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
