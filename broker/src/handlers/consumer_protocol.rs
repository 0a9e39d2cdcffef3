//! KIP-848's consumer group protocol: advertised, as a Kafka 3.9+ broker advertises it
//! whether or not it runs it, and answered UNSUPPORTED_VERSION, as Kafka answers it while
//! the protocol is not enabled (no `group.version`, as here: README, "kmirror-broker").
//! A client that asks for it (librdkafka's `group.protocol=consumer`) is told so and fails
//! at once; an API left out of ApiVersions made librdkafka look for a coordinator forever.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};

/// Kafka: KafkaApis.handleConsumerGroupHeartbeat (`!isConsumerGroupProtocolEnabled`,
/// before authorization; ConsumerGroupHeartbeatRequest.getErrorResponse: no message).
pub fn heartbeat(_: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
}

/// Kafka: KafkaApis.handleConsumerGroupDescribe (`!isConsumerGroupProtocolEnabled`;
/// ConsumerGroupDescribeRequest.getErrorResponse: each group named, with the error).
pub fn describe(req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let groups = req
        .group_ids
        .into_iter()
        .map(|group_id| {
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(ResponseError::UnsupportedVersion.code())
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
