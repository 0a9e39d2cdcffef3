//! CreateTopics: partitions (or the broker default), a replication factor up to the number
//! of nodes (every partition is placed on every node, whatever the factor asked), validated
//! configs, `validate_only`, TOPIC_ALREADY_EXISTS and INVALID_TOPIC_EXCEPTION.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::state::Broker;
use crate::topic_config::{self, TopicConfigs, TOPIC_KEYS};
use crate::topics::{validate_name, TopicError};

pub fn handle(broker: &Broker, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| create_one(broker, t, req.validate_only, version))
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn create_one(
    broker: &Broker,
    t: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let mut result = CreatableTopicResult::default().with_name(t.name.clone());
    let fail = |mut r: CreatableTopicResult, code: ResponseError, msg: String| {
        r.error_code = code.code();
        if version >= 1 {
            r.error_message = message(msg);
        }
        if version >= 5 {
            r.num_partitions = -1;
            r.replication_factor = -1;
        }
        r
    };
    let name = t.name.as_str();
    let nodes = broker.cluster.node_ids().len() as i32;
    if let Err(e) = validate_name(name) {
        return fail(result, ResponseError::InvalidTopicException, e.to_string());
    }
    if broker.topics.get(name).is_some() {
        return fail(
            result,
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        );
    }
    if let Some(existing) = broker.topics.colliding(name) {
        let e = TopicError::Collides {
            name: name.to_string(),
            existing,
        };
        return fail(result, ResponseError::InvalidTopicException, e.to_string());
    }
    let partitions = if t.num_partitions == -1 {
        broker.config.default_partitions
    } else {
        t.num_partitions
    };
    // Every partition is placed on every node (storage is one copy shared by them), so a
    // manual assignment could not be kept: refused rather than ignored.
    if !t.assignments.is_empty() {
        let ours = t.assignments.iter().all(|a| {
            a.broker_ids.iter().all(|b| b.0 == broker.config.node_id) && a.broker_ids.len() == 1
        });
        if !ours || t.num_partitions != -1 || t.replication_factor != -1 || nodes > 1 {
            return fail(
                result,
                ResponseError::InvalidReplicaAssignment,
                if nodes > 1 {
                    format!(
                        "Replica assignments are not supported: this broker places every \
                         partition on all {nodes} nodes."
                    )
                } else {
                    format!(
                        "Replica assignments must name only broker {}.",
                        broker.config.node_id
                    )
                },
            );
        }
    }
    let partitions = if t.assignments.is_empty() {
        partitions
    } else {
        t.assignments.len() as i32
    };
    if partitions < 1 {
        return fail(
            result,
            ResponseError::InvalidPartitions,
            "Number of partitions must be larger than 0.".into(),
        );
    }
    // Kafka: ReplicationControlManager.createTopic / StripedReplicaPlacer.place
    let rf = i32::from(t.replication_factor);
    if rf < -1 || rf == 0 {
        return fail(
            result,
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        );
    }
    if rf > nodes {
        return fail(
            result,
            ResponseError::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor \
                 of {rf} cannot be reached because only {nodes} broker(s) are registered."
            ),
        );
    }
    let mut configs = TopicConfigs::new();
    for c in &t.configs {
        let Some(value) = &c.value else { continue };
        if let Err(e) = topic_config::validate(c.name.as_str(), value.as_str()) {
            return fail(result, ResponseError::InvalidConfig, e.to_string());
        }
        configs.insert(c.name.to_string(), value.to_string());
    }
    if !validate_only {
        match broker.topics.create(name, partitions, configs.clone()) {
            Ok(topic) => {
                result.topic_id = if version >= 7 {
                    topic.id
                } else {
                    Default::default()
                }
            }
            Err(e @ TopicError::AlreadyExists(_)) => {
                return fail(result, ResponseError::TopicAlreadyExists, e.to_string())
            }
            Err(e) => return fail(result, super::topic_error_code(&e), e.to_string()),
        }
    }
    if version >= 5 {
        result.num_partitions = partitions;
        // What Metadata reports: a replica on every node.
        result.replication_factor = nodes as i16;
        let defaults = broker.topics.defaults();
        result.configs = Some(
            TOPIC_KEYS
                .iter()
                .filter_map(|k| {
                    let (value, source) = defaults.effective(&configs, k.name)?;
                    Some(
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(k.name))
                            .with_value(Some(StrBytes::from_string(value)))
                            .with_config_source(source.code()),
                    )
                })
                .collect(),
        );
    }
    result
}
