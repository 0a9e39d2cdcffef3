//! DeleteTopics: by name (v0-5) or by name or topic id (v6+). A topic named neither way,
//! or both ways, and a name or id given twice get INVALID_REQUEST and are not deleted,
//! as Kafka's controller answers them (ControllerApis.deleteTopics).

use std::collections::{HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::state::Broker;

pub fn handle(broker: &Broker, mut req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let refused = refuse_invalid(&mut req, version);
    let mut resp = delete(broker, req, version);
    resp.responses.splice(0..0, refused);
    resp
}

/// Takes out of `req` what Kafka refuses before looking anything up, and answers it with
/// INVALID_REQUEST: a topic with neither a name nor an id, one with both, and every
/// mention of a name or an id given more than once.
// Kafka: ControllerApis.deleteTopics
pub fn refuse_invalid(req: &mut DeleteTopicsRequest, version: i16) -> Vec<DeletableTopicResult> {
    let invalid = |name: Option<TopicName>, id: uuid::Uuid, msg: &str| {
        let mut r = DeletableTopicResult::default()
            .with_name(name)
            .with_error_code(ResponseError::InvalidRequest.code());
        if version >= 6 {
            r.topic_id = id;
        }
        if version >= 5 {
            r.error_message = message(msg.to_string());
        }
        r
    };
    let mut refused = Vec::new();
    let mut names: HashMap<StrBytes, usize> = HashMap::new();
    let mut ids: HashMap<uuid::Uuid, usize> = HashMap::new();
    for n in &req.topic_names {
        *names.entry(n.0.clone()).or_default() += 1;
    }
    req.topics.retain(|t| match (&t.name, t.topic_id.is_nil()) {
        (None, true) => {
            let msg = "Neither topic name nor id were specified.";
            refused.push(invalid(None, t.topic_id, msg));
            false
        }
        (Some(n), false) => {
            let msg = "You may not specify both topic name and topic id.";
            refused.push(invalid(Some(n.clone()), t.topic_id, msg));
            false
        }
        (Some(n), true) => {
            *names.entry(n.0.clone()).or_default() += 1;
            true
        }
        (None, false) => {
            *ids.entry(t.topic_id).or_default() += 1;
            true
        }
    });
    let twice_named = |n: &TopicName| names.get(&n.0).is_some_and(|&k| k > 1);
    let mut duplicates: Vec<StrBytes> = Vec::new();
    let mut note = |n: &TopicName| {
        if !duplicates.contains(&n.0) {
            duplicates.push(n.0.clone());
        }
    };
    req.topic_names.retain(|n| {
        let twice = twice_named(n);
        if twice {
            note(n);
        }
        !twice
    });
    let mut duplicate_ids: Vec<uuid::Uuid> = Vec::new();
    req.topics.retain(|t| {
        if let Some(n) = &t.name {
            let twice = twice_named(n);
            if twice {
                note(n);
            }
            return !twice;
        }
        let twice = ids[&t.topic_id] > 1;
        if twice && !duplicate_ids.contains(&t.topic_id) {
            duplicate_ids.push(t.topic_id);
        }
        !twice
    });
    for n in duplicates {
        refused.push(invalid(
            Some(TopicName(n)),
            uuid::Uuid::nil(),
            "Duplicate topic name.",
        ));
    }
    for id in duplicate_ids {
        refused.push(invalid(None, id, "Duplicate topic id."));
    }
    refused
}

/// Deletes the topics of a request that [`refuse_invalid`] has checked.
pub fn delete(broker: &Broker, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
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
    // A topic named by name and by its id: the name gets INVALID_REQUEST, the id no answer,
    // and it is not deleted.
    // Kafka: ControllerApis.deleteTopics ("maps to an ID that was already supplied")
    let by_id: HashSet<uuid::Uuid> = targets
        .iter()
        .filter(|(name, id)| name.is_none() && !id.is_nil())
        .map(|(_, id)| *id)
        .collect();
    let both_ways: HashSet<uuid::Uuid> = targets
        .iter()
        .filter_map(|(name, _)| broker.topics.get(name.as_ref()?.as_str()))
        .map(|t| t.id)
        .filter(|id| by_id.contains(id))
        .collect();
    let responses = targets
        .into_iter()
        .filter(|(name, id)| name.is_some() || !both_ways.contains(id))
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => broker.topics.get(n.as_str()),
                None => broker.topics.get_by_id(id),
            };
            let mut r = DeletableTopicResult::default().with_name(name.clone());
            if version >= 6 {
                r.topic_id = id;
            }
            if let Some(t) = topic.as_ref().filter(|t| both_ways.contains(&t.id)) {
                r.topic_id = t.id;
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = message(
                    "The provided topic name maps to an ID that was already supplied.".to_string(),
                );
                return r;
            }
            let Some(topic) = topic else {
                // Kafka: ControllerApis.deleteTopics (ApiError of the code: its
                // Errors.message; a 2.8 broker, KafkaApis.handleDeleteTopicsRequest, none)
                let (code, text) = if name.is_none() {
                    (
                        ResponseError::UnknownTopicId,
                        "This server does not host this topic ID.",
                    )
                } else {
                    (
                        ResponseError::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                };
                r.error_code = code.code();
                if version >= 5 && !broker.versions.zookeeper() {
                    r.error_message = message(text.to_string());
                }
                return r;
            };
            if version >= 6 {
                r.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
                r.topic_id = topic.id;
            }
            let deleted = broker.topics.delete(&topic.name);
            if deleted.is_ok() {
                broker.groups.remove_topic_offsets(&topic.name);
                if let Err(e) = broker.cluster.forget(&topic.name) {
                    // Kept entries are harmless: a topic created again has a new id.
                    tracing::warn!(topic = %topic.name, error = %e, "Cannot write leaders.json after a delete.");
                }
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
