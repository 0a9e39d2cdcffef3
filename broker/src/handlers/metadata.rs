//! Metadata: the live nodes at their advertised addresses, cluster id, controller id (the
//! lowest live node), and topics with stable topic ids, each partition with its real
//! leader, leader epoch, replicas, ISR and offline replicas. Unknown topics are created
//! when both the broker and the request (v4+) allow auto-creation, and answered
//! UNKNOWN_TOPIC_OR_PARTITION until the next request, as Kafka's brokers answer while the
//! controller creates them. Topics are looked up by
//! id from v12; ids or null names in v10-11 requests fail the request with
//! INVALID_REQUEST, as in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::replica_assignments::{self, Refused};
use crate::state::Broker;
use crate::topics::{Topic, TopicError};

pub async fn handle(broker: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    if let Some(refused) = refuse_ids_before_v12(&req, version) {
        return refused;
    }
    let controller = BrokerId(broker.cluster.coordinator().node_id);
    let brokers = broker
        .cluster
        .live_nodes()
        .into_iter()
        .map(|n| {
            let n = broker.advertise(n);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n.node_id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(if version >= 1 {
            controller
        } else {
            BrokerId(-1)
        });
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.config.cluster_id.clone()));
    }
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let allow_create =
        broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let topics = if all {
        broker
            .topics
            .all()
            .iter()
            .map(|t| describe(broker, t, version))
            .collect()
    } else {
        named(
            broker,
            req.topics.unwrap_or_default(),
            allow_create,
            version,
        )
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    // Kafka: KafkaApis.handleTopicMetadataRequest (authorized operations only when asked,
    // cluster ones only at v8-10; the fields do not exist at other versions)
    if version >= 8 {
        if req.include_topic_authorized_operations {
            // Not for ids no topic has: Kafka answers those apart from its topics.
            for t in topics
                .iter_mut()
                .filter(|t| t.error_code != UNKNOWN_TOPIC_ID)
            {
                t.topic_authorized_operations = super::acls::TOPIC_OPERATIONS;
            }
        }
        if version <= 10 && req.include_cluster_authorized_operations {
            resp.cluster_authorized_operations = super::acls::CLUSTER_OPERATIONS;
        }
    }
    resp.with_topics(topics)
}

const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();

/// The entries of a request that are answered. Kafka: KafkaApis.handleTopicMetadataRequest
/// — when any entry carries a topic id (v12+), the topics are those ids' and the names are
/// not looked at; each topic is answered once (a set). The authorizer's wrapper selects
/// with this too, so that it checks what is answered.
pub fn select(requested: Vec<MetadataRequestTopic>, version: i16) -> Vec<MetadataRequestTopic> {
    let by_id = version >= 12 && requested.iter().any(|t| !t.topic_id.is_nil());
    let mut ids = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    requested
        .into_iter()
        .filter_map(|t| {
            if by_id {
                (!t.topic_id.is_nil() && ids.insert(t.topic_id)).then(|| t.with_name(None))
            } else {
                let first = t.name.as_ref().is_none_or(|n| names.insert(n.clone()));
                first.then_some(t)
            }
        })
        .collect()
}

/// The answers for the topics a request names ([`select`]): an id no topic has gets
/// UNKNOWN_TOPIC_ID and a null name.
fn named(
    broker: &Broker,
    requested: Vec<MetadataRequestTopic>,
    allow_create: bool,
    version: i16,
) -> Vec<MetadataResponseTopic> {
    select(requested, version)
        .into_iter()
        .map(|t| match (&t.name, version >= 12 && !t.topic_id.is_nil()) {
            (_, true) => match broker.topics.get_by_id(t.topic_id) {
                Some(topic) => describe(broker, &topic, version),
                None => MetadataResponseTopic::default()
                    .with_name(None)
                    .with_topic_id(t.topic_id)
                    .with_error_code(UNKNOWN_TOPIC_ID),
            },
            (Some(name), false) => lookup_or_create(broker, name, allow_create, version),
            (None, false) => MetadataResponseTopic::default()
                .with_error_code(ResponseError::InvalidRequest.code()),
        })
        .collect()
}

fn lookup_or_create(
    broker: &Broker,
    name: &TopicName,
    allow_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    // (An internal topic's error entry says it is internal, as Kafka's does:
    // AutoTopicCreationManager / KafkaApis.getTopicMetadata.)
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
            .with_is_internal(crate::topics::is_internal(name.as_str()))
    };
    if let Some(t) = broker.topics.get(name.as_str()) {
        return describe(broker, &t, version);
    }
    // Kafka: KafkaApis.getTopicMetadata (Topic.validate before UNKNOWN_TOPIC_OR_PARTITION).
    if let Err(e) = crate::topics::validate_name(name.as_str()) {
        return error(super::topic_error_code(&e));
    }
    if !allow_create {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    let created = auto_create(broker, name.as_str());
    // Kafka: AutoTopicCreationManager.sendCreateTopicRequest — the broker hands the topic
    // to the controller and answers UNKNOWN_TOPIC_OR_PARTITION, without partitions, at
    // once; the client asks again and finds the topic once it exists. What the controller
    // refuses (a colliding name, a replication factor it cannot place) is never seen by
    // the client but as that same answer on every retry.
    // A ZooKeeper-mode 2.8 broker creates the topic itself and answers what that gave:
    // LEADER_NOT_AVAILABLE once created (Kafka 2.8: AutoTopicCreationManager.createTopicsInZk),
    // else the creation's own error.
    let zookeeper = broker.versions.zookeeper();
    match created {
        Ok(_) | Err(Refused::Topic(TopicError::AlreadyExists(_))) if zookeeper => {
            return error(ResponseError::LeaderNotAvailable)
        }
        Ok(_) | Err(Refused::Topic(TopicError::AlreadyExists(_))) => {}
        Err(Refused::Topic(TopicError::Collides { .. })) if zookeeper => {
            return error(ResponseError::InvalidTopicException)
        }
        Err(Refused::Topic(TopicError::Collides { .. })) => {}
        Err(Refused::Replicas(code, reason)) => {
            tracing::warn!(topic = %name.as_str(), reason, "Cannot auto-create a topic.");
            if zookeeper {
                return error(code);
            }
        }
        Err(Refused::Topic(e)) => return error(super::topic_error_code(&e)),
    }
    error(ResponseError::UnknownTopicOrPartition)
}

/// Creates `name` as Kafka's auto-creation does: the broker's default partitions and
/// replication factor, or Kafka's own for an internal topic
/// (AutoTopicCreationManager.creatableTopic). Its replicas are placed before anyone can see
/// it.
pub fn auto_create(broker: &Broker, name: &str) -> Result<Arc<Topic>, Refused> {
    let rf = broker.cluster.default_replication_factor();
    let (partitions, configs) =
        crate::internal_topics::creatable(name, broker.config.default_partitions, rf);
    broker
        .topics
        .create_placed(name, partitions, configs, &[], |topic| {
            let replicas = broker
                .cluster
                .place(&topic.name, 0..partitions, rf as i32)
                .map_err(|reason| {
                    Refused::Replicas(ResponseError::InvalidReplicationFactor, reason)
                })?;
            Ok::<_, Refused>(replica_assignments::assign(broker, topic, 0, replicas)?)
        })
}

fn describe(broker: &Broker, topic: &Arc<Topic>, version: i16) -> MetadataResponseTopic {
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = (0..topic.partition_count())
        .map(|i| {
            let v = broker.cluster.view(topic, i);
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(v.leader))
                .with_leader_epoch(if version >= 7 { v.leader_epoch } else { -1 })
                .with_replica_nodes(ids(v.replicas))
                .with_isr_nodes(ids(v.isr));
            if version >= 5 {
                p.offline_replicas = ids(v.offline);
            }
            // No live replica: MetadataCache answers LEADER_NOT_AVAILABLE.
            if v.leader == crate::cluster::NO_LEADER {
                p.error_code = ResponseError::LeaderNotAvailable.code();
            }
            p
        })
        .collect();
    // Kafka: KRaftMetadataCache.getPartitionMetadata's callers (Topic.isInternal).
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_is_internal(crate::topics::is_internal(&topic.name))
        .with_partitions(partitions);
    if version >= 10 {
        t.topic_id = topic.id;
    }
    t
}

/// Topic ids (and null names) are only valid from v12: below, the whole request fails with
/// INVALID_REQUEST, answered as `MetadataRequest.getErrorResponse` does (each topic with
/// the error, nothing else).
// Kafka: KafkaApis.handleTopicMetadataRequest.
fn refuse_ids_before_v12(req: &MetadataRequest, version: i16) -> Option<MetadataResponse> {
    let topics = req.topics.as_ref()?;
    let invalid = |t: &MetadataRequestTopic| t.name.is_none() || !t.topic_id.is_nil();
    if version >= 12 || !topics.iter().any(invalid) {
        return None;
    }
    let answers = topics
        .iter()
        .map(|t| {
            MetadataResponseTopic::default()
                .with_name(Some(t.name.clone().unwrap_or_default()))
                .with_topic_id(t.topic_id)
                .with_error_code(ResponseError::InvalidRequest.code())
        })
        .collect();
    Some(MetadataResponse::default().with_topics(answers))
}
