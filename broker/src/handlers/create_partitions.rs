//! CreatePartitions: grow a topic's partition count (never shrink), with `validate_only`.
//! One request adds at most 10000 partitions, all topics together, as Kafka's controller
//! writes at most 10000 records per request: the topic that would go past it, and every
//! topic after it, fails with UNKNOWN_SERVER_ERROR and no message, as in Kafka (which
//! also keeps the partitions of the failing topic that fit; here it gets none). New
//! partitions get as many replicas as the topic's first partition: placed, or as the
//! request's manual assignments say.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::create_topics::MAX_RECORDS_PER_REQUEST;
use super::{message, replica_assignments};
use crate::state::Broker;
use crate::topics::{Topic, TopicError};

pub fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    // Kafka: ReplicationControlManager.createPartitions (a BoundedList of
    // QuorumController.MAX_RECORDS_PER_USER_OP records, one per new partition)
    let mut room = MAX_RECORDS_PER_REQUEST;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let replicas = match new_replicas(broker, &t, room) {
                Ok(replicas) => replicas,
                Err((code, msg)) => {
                    r.error_code = code.code();
                    r.error_message = message(msg);
                    return r;
                }
            };
            let added = broker
                .topics
                .add_partitions(t.name.as_str(), t.count, req.validate_only, room);
            match added {
                Ok(added) => {
                    room -= added;
                    if let (false, Some((topic, first, replicas))) = (req.validate_only, replicas) {
                        if let Err(e) = broker.cluster.assign(&topic, first, replicas) {
                            tracing::error!(topic = %t.name.as_str(), error = %e, "Cannot write the new partitions' replicas.");
                            r.error_code = ResponseError::KafkaStorageError.code();
                            r.error_message = message(format!("cannot write leaders.json: {e}"));
                        }
                    }
                }
                Err(e @ TopicError::TooManyNewPartitions { .. }) => {
                    tracing::warn!(topic = %t.name.as_str(), error = %e, "Refusing CreatePartitions.");
                    // Kafka: the record list stays full; an unexpected exception's
                    // UNKNOWN_SERVER_ERROR carries no message (ApiError.fromThrowable).
                    room = 0;
                    r.error_code = super::topic_error_code(&e).code();
                    r.error_message = None;
                }
                Err(e) => {
                    r.error_code = super::topic_error_code(&e).code();
                    r.error_message = message(e.to_string());
                }
            }
            r
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// New partitions of a topic: the topic, the first new index, each one's replicas.
type NewPartitions = (Arc<Topic>, i32, Vec<Vec<i32>>);

/// The new partitions' replicas: `(topic, first new partition, replicas)`, `None` when no
/// partition would be added (the registry then refuses the count), or the refusal. As many
/// replicas as the topic's first partition has: manual assignments are checked against
/// that, otherwise they are placed.
// Kafka: ReplicationControlManager.createPartitions
fn new_replicas(
    broker: &Broker,
    t: &CreatePartitionsTopic,
    room: i64,
) -> Result<Option<NewPartitions>, (ResponseError, String)> {
    let Some(topic) = broker.topics.get(t.name.as_str()) else {
        return Ok(None);
    };
    let current = topic.partition_count();
    let adding = i64::from(t.count) - i64::from(current);
    if adding < 1 || adding > room {
        return Ok(None);
    }
    let rf = broker.cluster.replication_factor(&topic);
    let replicas = match &t.assignments {
        Some(assignments) => {
            if assignments.len() as i64 != adding {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Attempted to add {adding} additional partition(s), but only {} \
                         assignment(s) were specified.",
                        assignments.len()
                    ),
                ));
            }
            let mut replicas = Vec::with_capacity(assignments.len());
            for (partition, a) in (current..).zip(assignments) {
                let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
                replica_assignments::check(broker, partition, &ids, Some(rf))
                    .map_err(|msg| (ResponseError::InvalidReplicaAssignment, msg))?;
                replicas.push(ids);
            }
            replicas
        }
        None => broker
            .cluster
            .place(t.name.as_str(), current..t.count, rf as i32)
            .map_err(|msg| (ResponseError::InvalidReplicationFactor, msg))?,
    };
    Ok(Some((topic, current, replicas)))
}
