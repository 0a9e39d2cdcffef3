//! Small cluster-level APIs: FindCoordinator (the lowest live node coordinates every
//! group and transactional id, once the kind's internal topic exists; the batched v4+ form
//! too), DescribeCluster (the live nodes), OffsetForLeaderEpoch (from the partition's
//! leader-epoch history, on its leader), DeleteRecords (moves the log start offset, on the
//! leader), DescribeLogDirs (the data directory and partition sizes) and InitProducerId.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::leaders;
use crate::log::LogError;
use crate::state::Broker;

fn host(node: &crate::cluster::NodeEndpoint) -> StrBytes {
    StrBytes::from_string(node.host.clone())
}

pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let coordinator = broker.advertise(broker.cluster.coordinator());
    let node = BrokerId(coordinator.node_id);
    // Kafka: KafkaApis.handleFindCoordinatorRequest — key type 0 (group) or 1
    // (transaction); any other is INVALID_REQUEST. One node coordinates both.
    let error = match crate::internal_topics::of_key_type(req.key_type) {
        None => ResponseError::InvalidRequest.code(),
        // Kafka: KafkaApis.getCoordinator — the kind's internal topic is created on first
        // use, and COORDINATOR_NOT_AVAILABLE answered meanwhile (clients ask again).
        Some(topic) if broker.topics.get(topic).is_none() => {
            if let Err(super::replica_assignments::Refused::Replicas(_, reason)) =
                super::metadata::auto_create(broker, topic)
            {
                tracing::warn!(topic, reason, "Cannot create an internal topic.");
            }
            ResponseError::CoordinatorNotAvailable.code()
        }
        Some(_) => 0,
    };
    let message = (error != 0)
        .then(|| crate::authz::default_message(error))
        .flatten();
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                // Kafka: handleFindCoordinatorRequestV4AndAbove sets no message: the
                // field's default, "" (FindCoordinatorResponse.json).
                let c = Coordinator::default()
                    .with_key(key)
                    .with_error_code(error)
                    .with_error_message(Some(StrBytes::default()));
                if error == 0 {
                    c.with_node_id(node)
                        .with_host(host(&coordinator))
                        .with_port(coordinator.port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    // Kafka: FindCoordinatorRequest.getErrorResponse — v1-3 errors carry Errors.message().
    let message = match ResponseError::try_from_code(error) {
        Some(ResponseError::CoordinatorNotAvailable) => {
            Some(StrBytes::from_static_str("The coordinator is not available."))
        }
        Some(ResponseError::InvalidRequest) => Some(StrBytes::from_static_str(
            "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.",
        )),
        // handleFindCoordinatorRequestLessThanV4: Errors.NONE.message() is its name.
        None => Some(StrBytes::from_static_str("NONE")),
        _ => message,
    };
    let resp = FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_error_message(message.filter(|_| version >= 1));
    if error != 0 {
        return resp.with_node_id(BrokerId(-1)).with_port(-1);
    }
    resp.with_node_id(node)
        .with_host(host(&coordinator))
        .with_port(coordinator.port)
}

/// DescribeCluster's endpoint types (KIP-919), as Kafka names them in its messages.
const BROKER_ENDPOINT: i8 = 1;
const CONTROLLER_ENDPOINT: i8 = 2;

pub fn describe_cluster(
    broker: &Broker,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    // Kafka: AuthHelper.computeDescribeClusterResponse — a broker answers only for its
    // brokers (INVALID_REQUEST at v0, where the field does not exist anyway).
    let refused = |code: ResponseError, message: String| {
        let code = if version == 0 {
            ResponseError::InvalidRequest
        } else {
            code
        };
        DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    match req.endpoint_type {
        BROKER_ENDPOINT => {}
        CONTROLLER_ENDPOINT => {
            return refused(
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".into(),
            )
        }
        other => {
            return refused(
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {other}"),
            )
        }
    }
    // Kafka: KafkaApis.handleDescribeCluster (INT32_MIN unless asked for)
    let cluster_authorized_operations = if req.include_cluster_authorized_operations {
        super::acls::CLUSTER_OPERATIONS
    } else {
        i32::MIN
    };
    let brokers = broker
        .cluster
        .live_nodes()
        .into_iter()
        .map(|n| {
            let n = broker.advertise(n);
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n.node_id))
                .with_host(host(&n))
                .with_port(n.port)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_authorized_operations(cluster_authorized_operations)
        .with_cluster_id(StrBytes::from_string(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.cluster.coordinator().node_id))
        .with_brokers(brokers)
        .with_endpoint_type(BROKER_ENDPOINT)
}

pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    match topic.as_ref() {
                        Some(t) if t.partition(p.partition).is_some() => {
                            leaders::end_offset_for_epoch(broker, t, p, out)
                        }
                        _ => out.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn delete_records(
    broker: &Broker,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    // Kafka: KafkaApis.handleDeleteRecordsRequest keys the request by partition: a
    // partition named twice is deleted up to its last offset and answered once, and a
    // topic named twice is answered once.
    let mut wanted: Vec<(TopicName, Vec<(i32, i64)>)> = Vec::new();
    for t in req.topics {
        let at = match wanted.iter().position(|(name, _)| *name == t.name) {
            Some(at) => at,
            None => {
                wanted.push((t.name.clone(), Vec::new()));
                wanted.len() - 1
            }
        };
        let partitions = &mut wanted[at].1;
        for p in t.partitions {
            match partitions.iter_mut().find(|(i, _)| *i == p.partition_index) {
                Some(named) => named.1 = p.offset,
                None => partitions.push((p.partition_index, p.offset)),
            }
        }
    }
    let topics = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let topic = broker.topics.get(name.as_str());
            let partitions = partitions
                .into_iter()
                .map(|(partition_index, offset)| {
                    let mut out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition_index)
                        .with_low_watermark(-1);
                    let (Some(t), Some(part)) = (
                        topic.as_ref(),
                        topic.as_ref().and_then(|t| t.partition(partition_index)),
                    ) else {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        return out;
                    };
                    // Kafka: Partition.deleteRecordsOnLeader: only the leader deletes ...
                    if let Err(e) = broker.check_leader(t, partition_index, None, true) {
                        out.error_code = e.code().code();
                        return out;
                    }
                    // ... and compact-only topics refuse it.
                    if !broker.topics.defaults().deletes(&t.configs()) {
                        out.error_code = ResponseError::PolicyViolation.code();
                        return out;
                    }
                    // -1 means "up to the high watermark".
                    let offset = if offset == -1 {
                        part.log.lock().expect("log lock").log_end_offset()
                    } else {
                        offset
                    };
                    match part.delete_records_before(offset) {
                        Ok(start) => out.low_watermark = start,
                        Err(e @ LogError::OffsetOutOfRange { .. }) => {
                            tracing::debug!(error = %e, "DeleteRecords out of range.");
                            out.error_code = ResponseError::OffsetOutOfRange.code();
                        }
                        Err(e) => out.error_code = super::log_error_code(&e).code(),
                    }
                    out
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub fn describe_log_dirs(
    broker: &Broker,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.topic.as_str() == topic && t.partitions.contains(&partition)),
    };
    let topics = broker
        .topics
        .all()
        .iter()
        .filter_map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .read()
                .expect("partitions lock")
                .iter()
                .filter(|p| wanted(&t.name, p.index))
                .map(|p| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(p.log.lock().expect("log lock").size_bytes() as i64)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    // Kafka: ReplicaManager.describeLogDirs (the absolute path; the file system's total
    // and usable bytes, -1 where there is none: a broker in memory).
    let dir = broker
        .config
        .data_dir
        .as_ref()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
    let (total_bytes, usable_bytes) = dir
        .as_deref()
        .and_then(crate::fsutil::space_bytes)
        .unwrap_or((-1, -1));
    let dir = dir.map_or_else(|| "memory".into(), |d| d.display().to_string());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes)])
}

pub fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let resp = broker.producer_ids.handle(&req, version);
    if resp.error_code != 0 {
        tracing::warn!(error_code = resp.error_code, transactional_id = ?req.transactional_id.as_ref().map(|t| t.as_str()), "InitProducerId refused.");
    }
    resp
}
