//! DeleteTopics: by name (v0-5) or by name or topic id (v6+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::state::Broker;

pub fn handle(broker: &Broker, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => broker.topics.get(n.as_str()),
                None => broker.topics.get_by_id(id),
            };
            let mut r = DeletableTopicResult::default().with_name(name.clone());
            if version >= 6 {
                r.topic_id = id;
            }
            let Some(topic) = topic else {
                let code = if name.is_none() {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                r.error_code = code.code();
                return r;
            };
            if version >= 6 {
                r.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
                r.topic_id = topic.id;
            }
            let deleted = broker.topics.delete(&topic.name);
            if deleted.is_ok() {
                broker.groups.remove_topic_offsets(&topic.name);
            }
            if let Err(e) = deleted {
                r.error_code = super::topic_error_code(&e).code();
                if version >= 5 {
                    r.error_message = message(e.to_string());
                }
            }
            r
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
