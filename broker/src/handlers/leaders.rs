//! Leadership APIs: ElectLeaders (preferred and unclean elections), AlterPartitionReassignments
//! (reassignments complete as soon as every added replica is live, since storage is
//! shared; otherwise they wait and ListPartitionReassignments lists them), and the
//! OffsetForLeaderEpoch answer from a partition's leader-epoch history. Any node answers
//! the controller APIs, as Kafka brokers forward them to the controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::cluster::ElectionError;
use crate::state::Broker;
use crate::topics::Topic;

/// ElectionType.PREFERRED and ElectionType.UNCLEAN.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn election_code(e: &ElectionError) -> ResponseError {
    match e {
        ElectionError::NotNeeded => ResponseError::ElectionNotNeeded,
        ElectionError::PreferredNotAvailable(_) => ResponseError::PreferredLeaderNotAvailable,
        ElectionError::InvalidAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ElectionError::NoReassignment => ResponseError::NoReassignmentInProgress,
    }
}

fn persist(broker: &Broker) {
    if let Err(e) = broker.cluster.persist() {
        tracing::warn!(error = %e, "Cannot persist the leadership table.");
    }
}

/// ReplicationControlManager.electLeader for one partition, with its messages: its own for
/// an unknown topic or partition, the error's default one (ApiError(Errors)) otherwise.
fn elect(
    broker: &Broker,
    (name, topic): (&str, Option<&Topic>),
    partition: i32,
    kind: i8,
) -> Result<(), (ResponseError, String)> {
    let topic = topic.ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("No such topic as {name}"),
        )
    })?;
    let r = broker
        .cluster
        .change(topic, partition, |pl, live, leo| {
            if kind == UNCLEAN {
                pl.elect_unclean(live, leo)
            } else {
                pl.elect_preferred(live, leo)
            }
        })
        .ok_or_else(|| {
            (
                ResponseError::UnknownTopicOrPartition,
                format!("No such partition as {name}-{partition}"),
            )
        })?;
    r.map_err(|e| {
        // ReplicationControlManager.electLeader: an unclean election with no eligible
        // replica is ELIGIBLE_LEADERS_NOT_AVAILABLE.
        let (code, message) = match (&e, kind) {
            (ElectionError::PreferredNotAvailable(_), UNCLEAN) => (
                ResponseError::EligibleLeadersNotAvailable,
                "Eligible topic partition leaders are not available.",
            ),
            (ElectionError::PreferredNotAvailable(_), _) => (
                ResponseError::PreferredLeaderNotAvailable,
                "The preferred leader was not available.",
            ),
            (ElectionError::NotNeeded, _) => (
                ResponseError::ElectionNotNeeded,
                "Leader election not needed for topic partition.",
            ),
            _ => return (election_code(&e), e.to_string()),
        };
        tracing::debug!(topic = name, partition, reason = %e, "Leader election refused.");
        (code, message.to_string())
    })
}

/// ElectLeadersRequest.getErrorResponse: `code` at the top and, with `message`, for every
/// partition the request names.
pub fn error_response(
    req: ElectLeadersRequest,
    code: i16,
    text: Option<StrBytes>,
) -> ElectLeadersResponse {
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|tp| {
            let partitions = tp
                .partitions
                .iter()
                .map(|&i| {
                    PartitionResult::default()
                        .with_partition_id(i)
                        .with_error_code(code)
                        .with_error_message(text.clone())
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(tp.topic)
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(code)
        .with_replica_election_results(results)
}

pub fn elect_leaders(
    broker: &Broker,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let kind = if version >= 1 {
        req.election_type
    } else {
        PREFERRED
    };
    let mut resp = ElectLeadersResponse::default();
    if kind != PREFERRED && kind != UNCLEAN {
        // ReplicationControlManager.electionType: an unknown type is INVALID_REQUEST,
        // answered by ElectLeadersRequest.getErrorResponse for every partition named too.
        return error_response(
            req,
            ResponseError::InvalidRequest.code(),
            message(format!("Unknown election type {kind}")),
        );
    }
    let result = |partition: i32, r: Result<(), (ResponseError, String)>| match r {
        Ok(()) => PartitionResult::default().with_partition_id(partition),
        Err((code, msg)) => PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code.code())
            .with_error_message(message(msg)),
    };
    resp.replica_election_results = match req.topic_partitions {
        // Null: every partition; ones that already have the desired leader are left out
        // (ReplicationControlManager.electLeaders).
        None => broker
            .topics
            .all()
            .iter()
            .map(|t| {
                let partitions = (0..t.partition_count())
                    .filter_map(|i| {
                        let r = elect(broker, (&t.name, Some(t)), i, kind);
                        let skip = matches!(&r, Err((ResponseError::ElectionNotNeeded, _)));
                        (!skip).then(|| result(i, r))
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partition_result(partitions)
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|tp| {
                let topic = broker.topics.get(tp.topic.as_str());
                let partitions = tp
                    .partitions
                    .iter()
                    .map(|&i| {
                        result(
                            i,
                            elect(broker, (tp.topic.as_str(), topic.as_deref()), i, kind),
                        )
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(tp.topic)
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    persist(broker);
    resp
}

pub fn alter_partition_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let nodes = broker.cluster.node_ids();
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let target: Option<Vec<i32>> =
                        p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
                    let r = topic.as_ref().and_then(|t| {
                        broker
                            .cluster
                            .change(t, p.partition_index, |pl, live, leo| {
                                match target {
                                    // KIP-860: a changed replica count is refused when not allowed.
                                    Some(target)
                                        if !allow_rf_change
                                            && target.len()
                                                != pl.replicas.len() - pl.adding.len() =>
                                    {
                                        Err((
                                            ResponseError::InvalidReplicationFactor,
                                            "The replication factor would change.".to_string(),
                                        ))
                                    }
                                    Some(target) => pl
                                        .reassign(target, &nodes, live, leo)
                                        .map_err(|e| (election_code(&e), e.to_string())),
                                    None => pl
                                        .cancel_reassignment(live, leo)
                                        .map_err(|e| (election_code(&e), e.to_string())),
                                }
                            })
                    });
                    match r {
                        None => out
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(message(format!(
                                "Unable to find partition {}:{}.",
                                t.name.as_str(),
                                p.partition_index
                            ))),
                        Some(Ok(())) => out,
                        Some(Err((code, msg))) => out
                            .with_error_code(code.code())
                            .with_error_message(message(msg)),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    persist(broker);
    let mut resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        resp.allow_replication_factor_change = allow_rf_change;
    }
    resp
}

pub fn list_partition_reassignments(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let ongoing = broker.cluster.reassignments();
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for (topic, partition, pl) in ongoing {
        let current = broker
            .topics
            .get(&topic)
            .is_some_and(|t| t.id == pl.topic_id);
        if !current || !wanted(&topic, partition) {
            continue;
        }
        let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
        let entry = OngoingPartitionReassignment::default()
            .with_partition_index(partition)
            .with_replicas(ids(&pl.replicas))
            .with_adding_replicas(ids(&pl.adding))
            .with_removing_replicas(ids(&pl.removing));
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch for one partition: Partition.lastOffsetForLeaderEpoch on the
/// leader only (ReplicaManager.lastOffsetForLeaderEpoch, fetchOnlyFromLeader = true),
/// then LeaderEpochFileCache.endOffsetFor.
pub fn end_offset_for_epoch(
    broker: &Broker,
    topic: &Topic,
    p: &OffsetForLeaderPartition,
    out: EpochEndOffset,
) -> EpochEndOffset {
    let current = (p.current_leader_epoch != -1).then_some(p.current_leader_epoch);
    if let Err(e) = broker.check_leader(topic, p.partition, current, true) {
        return out.with_error_code(e.code().code());
    }
    let Some(partition) = topic.partition(p.partition) else {
        return out;
    };
    let log = partition.log.lock().expect("log lock");
    let found = broker.cluster.read(topic, p.partition, |pl, _| {
        pl.end_offset_for(p.leader_epoch, log.log_end_offset(), log.log_start_offset())
    });
    drop(log);
    match found {
        // UnifiedLog.endOffsetForEpoch: an undefined offset leaves the defaults (-1, -1).
        (_, -1) => out,
        (epoch, offset) => out.with_leader_epoch(epoch).with_end_offset(offset),
    }
}
