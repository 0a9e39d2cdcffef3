//! CreateTopics: partitions (or the broker default), replication factor 1 (this broker is
//! a single node), validated configs, `validate_only`, TOPIC_ALREADY_EXISTS and
//! INVALID_TOPIC_EXCEPTION.

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
    let partitions = if t.num_partitions == -1 {
        broker.config.default_partitions
    } else {
        t.num_partitions
    };
    if !t.assignments.is_empty() {
        let ours = t.assignments.iter().all(|a| {
            a.broker_ids.iter().all(|b| b.0 == broker.config.node_id) && a.broker_ids.len() == 1
        });
        if !ours || t.num_partitions != -1 || t.replication_factor != -1 {
            return fail(
                result,
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Replica assignments must name only broker {}.",
                    broker.config.node_id
                ),
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
    if !(t.replication_factor == -1 || t.replication_factor == 1) {
        return fail(
            result,
            ResponseError::InvalidReplicationFactor,
            format!(
                "Replication factor {} is larger than the number of brokers (1).",
                t.replication_factor
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
        result.replication_factor = 1;
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
