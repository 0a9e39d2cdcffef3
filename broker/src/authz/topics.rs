//! Authorization of the topic APIs: Metadata, Produce, Fetch, ListOffsets,
//! OffsetForLeaderEpoch, DeleteRecords, CreateTopics, DeleteTopics, CreatePartitions and
//! InitProducerId, each as the KafkaApis (or ControllerApis) method named on it.

use std::borrow::Cow;
use std::collections::BTreeSet;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{default_message, split, Guard, CLUSTER_DENIED, TOPIC_DENIED};

/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
const TRANSACTIONAL_ID_DENIED: i16 = 53;
use crate::acl::{op, resource};
use crate::handlers;
use crate::state::Broker;

/// A topic's name, from its id where a request names it by id (unknown ids: `None`, for
/// the handler to answer UNKNOWN_TOPIC_ID).
fn topic_name<'a>(broker: &Broker, name: &'a str, id: Uuid) -> Option<Cow<'a, str>> {
    if !name.is_empty() || id.is_nil() {
        return Some(Cow::Borrowed(name));
    }
    broker
        .topics
        .get_by_id(id)
        .map(|t| Cow::Owned(t.name.clone()))
}

/// Whether the caller may `operation` the topic; unknown ids pass (to the handler).
fn allows_topic(g: &Guard, broker: &Broker, operation: i8, name: &str, id: Uuid) -> bool {
    topic_name(broker, name, id).is_none_or(|n| g.allows_topic(operation, &n))
}

/// Kafka: KafkaApis.handleTopicMetadataRequest (DESCRIBE per topic; unauthorized topics
/// hidden from an all-topics request, TOPIC_AUTHORIZATION_FAILED when named; CLUSTER or
/// TOPIC CREATE for auto-creation)
pub async fn metadata(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    if g.open() {
        return handlers::metadata::handle(broker, req, version).await;
    }
    let all_topics = req
        .topics
        .as_ref()
        .is_none_or(|t| t.is_empty() && version == 0);
    let mut denied = Vec::new();
    let mut allowed_names = BTreeSet::new();
    if !all_topics {
        let auto_create = req.allow_auto_topic_creation && broker.config.auto_create_topics;
        let may_create = auto_create
            && g.quietly_allows(op::CREATE, resource::CLUSTER, crate::acl::CLUSTER_NAME);
        let topics = handlers::metadata::select(req.topics.take().unwrap_or_default(), version);
        let (kept, refused) = split(topics, |t| {
            let by_name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
            let Some(name) = topic_name(broker, by_name, t.topic_id) else {
                return true;
            };
            if !g.allows_topic(op::DESCRIBE, &name) {
                return false;
            }
            let creating = auto_create && broker.topics.get(&name).is_none();
            if creating && !may_create && !g.allows_topic(op::CREATE, &name) {
                return false;
            }
            allowed_names.insert(name.into_owned());
            true
        });
        req.topics = Some(kept);
        denied = refused
            .into_iter()
            .map(|t| {
                // Named by id: the id stays, the name is not revealed.
                let by_id = t.name.is_none();
                metadata_response::MetadataResponseTopic::default()
                    .with_error_code(TOPIC_DENIED)
                    .with_name(if by_id { None } else { t.name })
                    .with_topic_id(if by_id { t.topic_id } else { Uuid::nil() })
                    .with_topic_authorized_operations(i32::MIN)
            })
            .collect();
    }
    let v0_emptied = version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty());
    let mut resp = handlers::metadata::handle(broker, req, version).await;
    resp.topics.retain(|t| {
        let name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
        if all_topics {
            g.quietly_allows(op::DESCRIBE, resource::TOPIC, name)
        } else {
            !v0_emptied && (t.error_code != 0 || allowed_names.contains(name))
        }
    });
    for t in &mut resp.topics {
        // Kafka: setTopicAuthorizedOperations on every topic answered, errors included.
        if t.topic_authorized_operations != i32::MIN {
            let name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
            t.topic_authorized_operations =
                g.operations(resource::TOPIC, name, handlers::acls::TOPIC_OPERATIONS);
        }
    }
    if resp.cluster_authorized_operations != i32::MIN {
        resp.cluster_authorized_operations =
            if g.quietly_allows(op::DESCRIBE, resource::CLUSTER, crate::acl::CLUSTER_NAME) {
                g.operations(
                    resource::CLUSTER,
                    crate::acl::CLUSTER_NAME,
                    handlers::acls::CLUSTER_OPERATIONS,
                )
            } else {
                0
            };
    }
    resp.topics.extend(denied);
    resp
}

/// Kafka: KafkaApis.handleProduceRequest (WRITE per topic)
pub async fn produce(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: ProduceRequest,
    version: i16,
) -> ProduceResponse {
    if g.open() {
        return handlers::produce::handle(broker, req, version).await;
    }
    // Transactional records need WRITE on the transactional id first, else every
    // partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED (ProduceRequest.getErrorResponse).
    let transaction_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !g.allows(op::WRITE, resource::TRANSACTIONAL_ID, id));
    let (kept, refused) = split(std::mem::take(&mut req.topic_data), |t| {
        !transaction_denied && allows_topic(g, broker, op::WRITE, &t.name, t.topic_id)
    });
    let code = if transaction_denied {
        TRANSACTIONAL_ID_DENIED
    } else {
        TOPIC_DENIED
    };
    req.topic_data = kept;
    let mut resp = if req.topic_data.is_empty() {
        ProduceResponse::default()
    } else {
        handlers::produce::handle(broker, req, version).await
    };
    // One answer per partition however often it is listed (handlers::produce::keyed).
    let answers = handlers::produce::keyed::by_partition(&refused)
        .into_iter()
        .map(|p| {
            let answer = produce_response::PartitionProduceResponse::default()
                .with_index(p.index)
                .with_error_code(code)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            (p.topic, answer)
        });
    resp.responses
        .extend(handlers::produce::keyed::respond(&refused, answers));
    resp
}

/// Kafka: KafkaApis.handleFetchRequest (followers: CLUSTER_ACTION, else every partition
/// TOPIC_AUTHORIZATION_FAILED; consumers: READ per topic)
pub async fn fetch(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: FetchRequest,
    version: i16,
) -> FetchResponse {
    if let Some(refused) = handlers::fetch::session_error(&req, version) {
        return refused;
    }
    if g.open() {
        return handlers::fetch::handle(broker, req, version).await;
    }
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    // A follower with CLUSTER_ACTION reads every topic; a consumer needs READ on each.
    let follower_allowed = (replica >= 0).then(|| g.allows_cluster(op::CLUSTER_ACTION));
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        follower_allowed.unwrap_or_else(|| allows_topic(g, broker, op::READ, &t.topic, t.topic_id))
    });
    req.topics = kept;
    let mut resp = handlers::fetch::handle(broker, req, version).await;
    resp.responses.extend(
        refused
            .into_iter()
            .filter(|t| !t.partitions.is_empty())
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        fetch_response::PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_error_code(TOPIC_DENIED)
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect();
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(t.topic)
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions)
            }),
    );
    resp
}

/// Kafka: KafkaApis.handleListOffsetRequest (DESCRIBE per topic)
pub fn list_offsets(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        g.allows_topic(op::DESCRIBE, &t.name)
    });
    req.topics = kept;
    let mut resp = handlers::list_offsets::handle(broker, req, version);
    resp.topics.extend(refused.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                list_offsets_response::ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
                    .with_timestamp(-1)
                    .with_offset(-1)
            })
            .collect();
        list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(t.name)
            .with_partitions(partitions)
    }));
    resp
}

/// Kafka: KafkaApis.handleOffsetForLeaderEpochRequest (CLUSTER_ACTION, else DESCRIBE per
/// topic)
pub fn offset_for_leader_epoch(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: OffsetForLeaderEpochRequest,
    version: i16,
) -> OffsetForLeaderEpochResponse {
    let all = g.quietly_allows(
        op::CLUSTER_ACTION,
        resource::CLUSTER,
        crate::acl::CLUSTER_NAME,
    );
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        all || g.allows_topic(op::DESCRIBE, &t.topic)
    });
    req.topics = kept;
    let mut resp = handlers::cluster::offset_for_leader_epoch(broker, req, version);
    resp.topics.extend(refused.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                offset_for_leader_epoch_response::EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_error_code(TOPIC_DENIED)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1)
            })
            .collect();
        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
            .with_topic(t.topic)
            .with_partitions(partitions)
    }));
    resp
}

/// Kafka: KafkaApis.handleDeleteRecordsRequest (DELETE per topic)
pub fn delete_records(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: DeleteRecordsRequest,
    version: i16,
) -> DeleteRecordsResponse {
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        g.allows_topic(op::DELETE, &t.name)
    });
    req.topics = kept;
    let mut resp = handlers::cluster::delete_records(broker, req, version);
    resp.topics.extend(refused.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                delete_records_response::DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
                    .with_low_watermark(-1)
            })
            .collect();
        delete_records_response::DeleteRecordsTopicResult::default()
            .with_name(t.name)
            .with_partitions(partitions)
    }));
    resp
}

/// Kafka: ControllerApis.createTopics (duplicates and `__cluster_metadata` first, then
/// CLUSTER CREATE, else CREATE per topic; configs only with DESCRIBE_CONFIGS)
pub fn create_topics(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    if g.open() {
        return handlers::create_topics::handle(broker, req, version);
    }
    let all = g.quietly_allows(op::CREATE, resource::CLUSTER, crate::acl::CLUSTER_NAME);
    // A name given twice, and the metadata log's, are refused as INVALID_REQUEST whatever
    // the ACLs: Kafka sets them apart before it authorizes the rest.
    let set_apart = handlers::create_topics::set_apart(&req.topics);
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        all || set_apart.iter().any(|(n, _)| *n == t.name.0) || g.allows_topic(op::CREATE, &t.name)
    });
    req.topics = kept;
    let mut resp = handlers::create_topics::handle(broker, req, version);
    for t in &mut resp.topics {
        if t.error_code == 0 && !g.quietly_allows(op::DESCRIBE_CONFIGS, resource::TOPIC, &t.name) {
            // Kafka: ReplicationControlManager.createTopic leaves the configs empty (not
            // null) and the counts at -1.
            t.topic_config_error_code = TOPIC_DENIED;
            t.configs = Some(Vec::new());
            t.num_partitions = -1;
            t.replication_factor = -1;
        }
    }
    resp.topics.extend(refused.into_iter().map(|t| {
        create_topics_response::CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(TOPIC_DENIED)
            .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    }));
    resp
}

/// Kafka: ControllerApis.deleteTopics (CLUSTER DELETE, else DESCRIBE then DELETE per
/// topic; a describable topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION)
pub fn delete_topics(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    if g.open() || g.quietly_allows(op::DELETE, resource::CLUSTER, crate::acl::CLUSTER_NAME) {
        return handlers::delete_topics::handle(broker, req, version);
    }
    // Kafka checks the request's shape before any authorization.
    let mut refused = handlers::delete_topics::refuse_invalid(&mut req, version);
    let mut deny = |name: Option<TopicName>, id: Uuid| {
        refused.push(
            delete_topics_response::DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(id)
                .with_error_code(TOPIC_DENIED)
                .with_error_message(default_message(TOPIC_DENIED)),
        );
    };
    let allowed = |name: &str| {
        // Describable but missing: the handler answers UNKNOWN_TOPIC_OR_PARTITION.
        g.allows_topic(op::DESCRIBE, name)
            && (broker.topics.get(name).is_none() || g.allows_topic(op::DELETE, name))
    };
    let names = std::mem::take(&mut req.topic_names);
    for name in names {
        if allowed(&name) {
            req.topic_names.push(name);
        } else {
            deny(Some(name), Uuid::nil());
        }
    }
    let states = std::mem::take(&mut req.topics);
    for t in states {
        let by_name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
        let by_id = !t.topic_id.is_nil();
        match topic_name(broker, by_name, t.topic_id) {
            // Named by id, Kafka needs DELETE only; DESCRIBE decides whether the name shows.
            Some(name) if by_id && !g.allows_topic(op::DELETE, &name) => {
                let hidden = !g.quietly_allows(op::DESCRIBE, resource::TOPIC, &name);
                let shown = if hidden {
                    None
                } else {
                    Some(TopicName(StrBytes::from_string(name.into_owned())))
                };
                deny(shown, t.topic_id);
            }
            Some(name) if !by_id && !allowed(&name) => {
                deny(
                    Some(TopicName(StrBytes::from_string(name.into_owned()))),
                    t.topic_id,
                );
            }
            _ => req.topics.push(t),
        }
    }
    let mut resp = handlers::delete_topics::delete(broker, req, version);
    resp.responses.extend(refused);
    resp
}

/// Kafka: ControllerApis.createPartitions (ALTER per topic)
pub fn create_partitions(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: CreatePartitionsRequest,
    version: i16,
) -> CreatePartitionsResponse {
    let duplicates = handlers::create_partitions::take_duplicates(&mut req);
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        g.allows_topic(op::ALTER, &t.name)
    });
    req.topics = kept;
    let mut resp = handlers::create_partitions::handle(broker, req, version);
    resp.results.extend(duplicates);
    resp.results.extend(refused.into_iter().map(|t| {
        create_partitions_response::CreatePartitionsTopicResult::default()
            .with_name(t.name)
            .with_error_code(TOPIC_DENIED)
    }));
    resp
}

/// Kafka: KafkaApis.handleInitProducerIdRequest (a transactional id: WRITE on it; none:
/// CLUSTER IDEMPOTENT_WRITE or WRITE on any topic, KIP-679)
pub async fn init_producer_id(
    g: &Guard<'_>,
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if let Some(id) = &req.transactional_id {
        if !g.allows(op::WRITE, resource::TRANSACTIONAL_ID, id) {
            return InitProducerIdResponse::default()
                .with_error_code(TRANSACTIONAL_ID_DENIED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
    }
    let idempotent = req.transactional_id.is_none();
    if idempotent
        && !g.quietly_allows(
            op::IDEMPOTENT_WRITE,
            resource::CLUSTER,
            crate::acl::CLUSTER_NAME,
        )
        && !g.allows_any(op::WRITE, resource::TOPIC)
    {
        return InitProducerIdResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match &req.transactional_id {
        Some(id) => {
            let id = id.0.to_string();
            handlers::transactions::init_producer_id(broker, &req, version, &id).await
        }
        None => handlers::cluster::init_producer_id(broker, req, version),
    }
}
