//! CreatePartitions: grow a topic's partition count (never shrink), with `validate_only`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::message;
use crate::state::Broker;

pub fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
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
            let outcome = if bad_assignment {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("Replica assignments must name only broker {node}."),
                ))
            } else {
                broker
                    .topics
                    .add_partitions(t.name.as_str(), t.count, req.validate_only)
                    .map_err(|e| (super::topic_error_code(&e), e.to_string()))
            };
            if let Err((code, msg)) = outcome {
                r.error_code = code.code();
                r.error_message = message(msg);
            }
            r
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
