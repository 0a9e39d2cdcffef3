//! CreatePartitions: grow a topic's partition count (never shrink), with `validate_only`.
//! One request adds at most 10000 partitions, all topics together, as Kafka's controller
//! writes at most 10000 records per request: the topic that would go past it, and every
//! topic after it, fails with UNKNOWN_SERVER_ERROR and no message, as in Kafka (which
//! also keeps the partitions of the failing topic that fit; here it gets none). New
//! partitions get as many replicas as the topic's first partition: placed, or as the
//! request's manual assignments say. A topic named twice gets one INVALID_REQUEST answer
//! and no new partitions.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::create_topics::MAX_RECORDS_PER_REQUEST;
use super::message;
use super::replica_assignments::{self, Refused};
use crate::state::Broker;
use crate::topics::{Topic, TopicError};

/// Takes out of `req` every topic it names more than once; one INVALID_REQUEST answer for
/// each. Kafka: ControllerApis.createPartitions (before authorization).
pub fn take_duplicates(req: &mut CreatePartitionsRequest) -> Vec<CreatePartitionsTopicResult> {
    let mut seen = std::collections::HashSet::new();
    let repeated: std::collections::BTreeSet<_> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.clone()))
        .map(|t| t.name.clone())
        .collect();
    req.topics.retain(|t| !repeated.contains(&t.name));
    repeated
        .into_iter()
        .map(|name| {
            CreatePartitionsTopicResult::default()
                .with_name(name)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(message("Duplicate topic name."))
        })
        .collect()
}

pub fn handle(
    broker: &Broker,
    mut req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let duplicates = take_duplicates(&mut req);
    // Kafka: ReplicationControlManager.createPartitions (a BoundedList of
    // QuorumController.MAX_RECORDS_PER_USER_OP records, one per new partition)
    let mut room = MAX_RECORDS_PER_REQUEST;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            // Under the registry's lock, and before anyone can see the new partitions.
            let added = broker.topics.add_partitions(
                t.name.as_str(),
                t.count,
                req.validate_only,
                room,
                |topic, current| {
                    let replicas = new_replicas(broker, &t, topic, current)?;
                    if !req.validate_only {
                        replica_assignments::assign(broker, topic, current, replicas)?;
                    }
                    Ok::<_, Refused>(())
                },
            );
            match added {
                Ok(added) => room -= added,
                Err(Refused::Topic(e @ TopicError::TooManyNewPartitions { .. })) => {
                    tracing::warn!(topic = %t.name.as_str(), error = %e, "Refusing CreatePartitions.");
                    // Kafka: the record list stays full; an unexpected exception's
                    // UNKNOWN_SERVER_ERROR carries no message (ApiError.fromThrowable).
                    room = 0;
                    r.error_code = super::topic_error_code(&e).code();
                    r.error_message = None;
                }
                Err(Refused::Topic(e)) => {
                    r.error_code = super::topic_error_code(&e).code();
                    // Kafka: ReplicationControlManager.createPartitions throws
                    // UnknownTopicOrPartitionException without a message.
                    r.error_message = match e {
                        TopicError::Unknown(_) => None,
                        e => message(e.to_string()),
                    };
                }
                Err(Refused::Replicas(code, msg)) => {
                    r.error_code = code.code();
                    r.error_message = message(msg);
                }
            }
            r
        })
        .chain(duplicates)
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// The replicas of the partitions from `current` to the request's count: as many as the
/// topic's first partition has, given by the request's manual assignments (checked) or
/// placed.
// Kafka: ReplicationControlManager.createPartitions
fn new_replicas(
    broker: &Broker,
    t: &CreatePartitionsTopic,
    topic: &Topic,
    current: i32,
) -> Result<Vec<Vec<i32>>, Refused> {
    let adding = i64::from(t.count) - i64::from(current);
    let rf = broker.cluster.replication_factor(topic);
    let refuse = |code, msg| Refused::Replicas(code, msg);
    match &t.assignments {
        Some(assignments) => {
            if assignments.len() as i64 != adding {
                return Err(refuse(
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
                    .map_err(|msg| refuse(ResponseError::InvalidReplicaAssignment, msg))?;
                replicas.push(ids);
            }
            Ok(replicas)
        }
        None => broker
            .cluster
            .place(&topic.name, current..t.count, rf as i32)
            .map_err(|msg| refuse(ResponseError::InvalidReplicationFactor, msg)),
    }
}
