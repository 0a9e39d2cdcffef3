//! CreateTopics: partitions (or the broker default), replicas placed for the replication
//! factor (or `default.replication.factor`) or given by manual assignments, validated
//! configs, `validate_only`, TOPIC_ALREADY_EXISTS and INVALID_TOPIC_EXCEPTION. A request
//! too large for Kafka's controller (more than 10000 partitions, or more than 10000
//! metadata records) is refused whole with POLICY_VIOLATION before anything is created.
//! A name given twice, and `__cluster_metadata`, get INVALID_REQUEST and are not created.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{message, replica_assignments};
use crate::state::Broker;
use crate::topic_config::{self, TopicConfigs, TOPIC_KEYS};
use crate::topics::{validate_name, TopicError};

/// The most partitions one request may ask for, all topics together.
// Kafka: ReplicationControlManager.validateTotalNumberOfPartitions (MAX_PARTITIONS_PER_BATCH)
const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;
/// The most metadata records one request may write: one per topic created, one per config
/// it sets and one per partition.
// Kafka: QuorumController.MAX_RECORDS_PER_USER_OP (the BoundedList of ReplicationControlManager.createTopics)
pub(super) const MAX_RECORDS_PER_REQUEST: i64 = 10_000;

/// The KRaft metadata log's name, which no request may create.
const CLUSTER_METADATA_TOPIC_NAME: &str = "__cluster_metadata";

/// The names of a request refused before anything else, each once, in request order, with
/// why: a name given twice, and the metadata log's (Kafka: ControllerApis.createTopics,
/// INVALID_REQUEST, before authorization).
pub fn set_apart(topics: &[CreatableTopic]) -> Vec<(StrBytes, &'static str)> {
    let mut seen = std::collections::HashMap::<&StrBytes, usize>::new();
    for t in topics {
        *seen.entry(&t.name.0).or_default() += 1;
    }
    let mut refused: Vec<(StrBytes, &'static str)> = Vec::new();
    for t in topics {
        let reason = if seen[&t.name.0] > 1 {
            "Duplicate topic name."
        } else if t.name.as_str() == CLUSTER_METADATA_TOPIC_NAME {
            "Creation of internal topic __cluster_metadata is prohibited."
        } else {
            continue;
        };
        if !refused.iter().any(|(n, _)| *n == t.name.0) {
            refused.push((t.name.0.clone(), reason));
        }
    }
    refused
}

pub fn handle(broker: &Broker, mut req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    // A name given twice is created neither time and answered once, after the rest; so is
    // the metadata log's name.
    let refused = set_apart(&req.topics);
    req.topics
        .retain(|t| !refused.iter().any(|(n, _)| *n == t.name.0));
    let mut resp = create(broker, req, version);
    resp.topics
        .extend(refused.into_iter().map(|(name, reason)| {
            let result = CreatableTopicResult::default().with_name(TopicName(name));
            failed(
                result,
                ResponseError::InvalidRequest,
                reason.into(),
                version,
            )
        }));
    resp
}

/// Creates the topics of a request naming each once.
fn create(broker: &Broker, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    if let Some(msg) = too_large(broker, &req, version) {
        tracing::warn!(
            topics = req.topics.len(),
            reason = msg,
            "Refusing CreateTopics."
        );
        // Kafka: CreateTopicsRequest.getErrorResponse — every topic gets the error.
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatableTopicResult::default().with_name(t.name);
                failed(result, ResponseError::PolicyViolation, msg.into(), version)
            })
            .collect();
        return CreateTopicsResponse::default().with_topics(topics);
    }
    let mut created = Vec::new();
    let topics = req
        .topics
        .into_iter()
        .map(|t| create_one(broker, t, req.validate_only, version, &mut created))
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Why Kafka's controller would refuse the whole request for its size, if it would. Both
/// limits hold with `validate_only` too.
fn too_large(broker: &Broker, req: &CreateTopicsRequest, version: i16) -> Option<&'static str> {
    let default = i64::from(broker.config.default_partitions);
    let partitions: i64 = req
        .topics
        .iter()
        .map(|t| requested_partitions(t, default))
        .sum();
    // Kafka: ReplicationControlManager.validateTotalNumberOfPartitions (POLICY_VIOLATION)
    if partitions > MAX_PARTITIONS_PER_REQUEST {
        return Some("Excessively large number of partitions per request.");
    }
    let most_records = partitions
        + req
            .topics
            .iter()
            .map(|t| 1 + config_records(t))
            .sum::<i64>();
    if most_records <= MAX_RECORDS_PER_REQUEST {
        return None;
    }
    // Only the topics that would be created write records.
    let records: i64 = req
        .topics
        .iter()
        .filter(|t| {
            create_one(broker, (*t).clone(), true, version, &mut Vec::new()).error_code == 0
        })
        .map(|t| 1 + config_records(t) + requested_partitions(t, default))
        .sum();
    // Kafka: ReplicationControlManager.createTopics (BoundedListTooLongException, made
    // POLICY_VIOLATION by EventHandlerExceptionInfo.fromInternal)
    (records > MAX_RECORDS_PER_REQUEST)
        .then_some("Unable to perform excessively large batch operation.")
}

/// The partitions a topic asks for, as Kafka counts them: its assignments, else its
/// count (-1 = the broker default; other counts below 1 are none).
fn requested_partitions(t: &CreatableTopic, default: i64) -> i64 {
    match t.num_partitions {
        _ if !t.assignments.is_empty() => t.assignments.len() as i64,
        -1 => default,
        n => i64::from(n.max(0)),
    }
}

/// The config records creating `t` writes: one per key given a value.
fn config_records(t: &CreatableTopic) -> i64 {
    let keys: std::collections::HashSet<&str> = t
        .configs
        .iter()
        .filter(|c| c.value.is_some())
        .map(|c| c.name.as_str())
        .collect();
    keys.len() as i64
}

/// `r` answering `code` with `msg`.
fn failed(
    mut r: CreatableTopicResult,
    code: ResponseError,
    msg: String,
    version: i16,
) -> CreatableTopicResult {
    r.error_code = code.code();
    if version >= 1 {
        r.error_message = message(msg);
    }
    if version >= 5 {
        r.num_partitions = -1;
        r.replication_factor = -1;
    }
    r
}

/// Creates (or with `validate_only` checks) one topic; `created`: the topics this request
/// created before it, which its name may collide with, as in Kafka.
fn create_one(
    broker: &Broker,
    t: CreatableTopic,
    validate_only: bool,
    version: i16,
    created: &mut Vec<String>,
) -> CreatableTopicResult {
    // Kafka: ReplicationControlManager.createTopic (a null message when created)
    let mut result = CreatableTopicResult::default()
        .with_name(t.name.clone())
        .with_error_message(None);
    let fail = |r, code, msg| failed(r, code, msg, version);
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
    if let Some(existing) = broker.topics.colliding(name, created) {
        let e = TopicError::Collides {
            name: name.to_string(),
            existing,
        };
        return fail(result, ResponseError::InvalidTopicException, e.to_string());
    }
    // Configs are checked before the partitions and replicas.
    // Kafka: ReplicationControlManager.createTopics (computeConfigChanges, then
    // incrementalAlterConfig, then createTopic)
    let nulls: Vec<&str> = t
        .configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        // A ZooKeeper-mode 2.8 answers INVALID_REQUEST (ZkAdminManager.createTopics).
        return if broker.versions.zookeeper() {
            fail(
                result,
                ResponseError::InvalidRequest,
                format!(
                    "Null value not supported for topic configs : {}",
                    nulls.join(",")
                ),
            )
        } else {
            fail(
                result,
                ResponseError::InvalidConfig,
                format!(
                    "Null value not supported for topic configs: {}",
                    nulls.join(",")
                ),
            )
        };
    }
    let mut configs = TopicConfigs::new();
    for c in &t.configs {
        let value = c.value.as_ref().map_or("", |v| v.as_str());
        match topic_config::validate_in(c.name.as_str(), value, broker.versions.release()) {
            Ok(parsed) => configs.insert(c.name.to_string(), parsed),
            Err(e) => return fail(result, ResponseError::InvalidConfig, e.to_string()),
        };
    }
    if let Err(e) = broker.topics.defaults().validate_values(&configs) {
        return fail(result, ResponseError::InvalidConfig, e.to_string());
    }
    let partitions = if t.num_partitions == -1 {
        broker.config.default_partitions
    } else {
        t.num_partitions
    };
    // Kafka: ReplicationControlManager.createTopic
    let replicas = if !t.assignments.is_empty() {
        if t.replication_factor != -1 {
            return fail(
                result,
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1."
                    .into(),
            );
        }
        if t.num_partitions != -1 {
            return fail(
                result,
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1."
                    .into(),
            );
        }
        let assignments = t.assignments.iter().map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        });
        match replica_assignments::for_new_topic(broker, assignments) {
            Ok(replicas) => replicas,
            Err(msg) => return fail(result, ResponseError::InvalidReplicaAssignment, msg),
        }
    } else {
        let rf = i32::from(t.replication_factor);
        if rf < -1 || rf == 0 {
            return fail(
                result,
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            );
        }
        if partitions < 1 {
            return fail(
                result,
                ResponseError::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.".into(),
            );
        }
        let rf = if rf == -1 {
            broker.cluster.default_replication_factor() as i32
        } else {
            rf
        };
        match broker.cluster.place(name, 0..partitions, rf) {
            Ok(replicas) => replicas,
            Err(msg) => return fail(result, ResponseError::InvalidReplicationFactor, msg),
        }
    };
    let partitions = replicas.len() as i32;
    let replication_factor = replicas[0].len() as i16;
    if validate_only && version >= 7 {
        // Kafka: ReplicationControlManager.createTopic picks the id before validate_only
        // drops the records.
        result.topic_id = uuid::Uuid::new_v4();
    }
    if !validate_only {
        // The replicas are in the table before anyone can see the topic.
        let created_topic =
            broker
                .topics
                .create_placed(name, partitions, configs.clone(), created, |topic| {
                    replica_assignments::assign(broker, topic, 0, replicas)
                });
        match created_topic {
            Ok(topic) => {
                created.push(name.to_string());
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
        result.replication_factor = replication_factor;
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
