//! CreatePartitions: grow a topic's partition count (never shrink), with `validate_only`.
//! One request adds at most 10000 partitions, all topics together, as Kafka's controller
//! writes at most 10000 records per request: the topic that would go past it, and every
//! topic after it, fails with UNKNOWN_SERVER_ERROR and no message, as in Kafka (which
//! also keeps the partitions of the failing topic that fit; here it gets none).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::create_topics::MAX_RECORDS_PER_REQUEST;
use super::message;
use crate::state::Broker;
use crate::topics::TopicError;

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
            let node = broker.config.node_id;
            let bad_assignment = t
                .assignments
                .as_ref()
                .is_some_and(|a| a.iter().any(|p| p.broker_ids.iter().any(|b| b.0 != node)));
            if bad_assignment {
                r.error_code = ResponseError::InvalidReplicaAssignment.code();
                r.error_message = message(format!(
                    "Replica assignments must name only broker {node}."
                ));
                return r;
            }
            let added = broker
                .topics
                .add_partitions(t.name.as_str(), t.count, req.validate_only, room);
            match added {
                Ok(added) => room -= added,
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
