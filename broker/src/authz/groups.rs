//! Authorization of the group APIs (KafkaApis checks them before the coordinator sees
//! the request, so a node that does not coordinate the group answers with these errors
//! too; `handle` is the coordinator's or the not-coordinator answer): READ on the group to join, sync, heartbeat, leave and commit; DESCRIBE to
//! find its coordinator, fetch its offsets or describe it; DELETE to delete it or its
//! offsets; topics as each method names.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{split, Guard, GROUP_DENIED, TOPIC_DENIED};
use crate::acl::{op, resource, CLUSTER_NAME};
use crate::state::Broker;

/// Kafka: KafkaApis.getCoordinator (DESCRIBE on the group or the transactional id)
pub fn find_coordinator(
    g: &Guard<'_>,
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // Key type 0 names groups, 1 transactional ids (DESCRIBE on each).
    let (resource_type, denied) = match req.key_type {
        0 => (resource::GROUP, GROUP_DENIED),
        1 => (
            resource::TRANSACTIONAL_ID,
            ResponseError::TransactionalIdAuthorizationFailed.code(),
        ),
        _ => return crate::handlers::cluster::find_coordinator(broker, req, version),
    };
    let single_key = req.key.clone();
    if g.open() {
        return crate::handlers::cluster::find_coordinator(broker, req, version);
    }
    // Kafka checks DESCRIBE before it looks anything up: a request whose every key is
    // denied creates no internal topic.
    let any_allowed = if version >= 4 {
        req.coordinator_keys
            .iter()
            .any(|k| g.allows(op::DESCRIBE, resource_type, k))
    } else {
        g.allows(op::DESCRIBE, resource_type, &single_key)
    };
    let mut resp = if any_allowed {
        crate::handlers::cluster::find_coordinator(broker, req, version)
    } else if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                find_coordinator_response::Coordinator::default()
                    .with_key(key)
                    .with_error_message(Some(StrBytes::default()))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
    };
    if version >= 4 {
        for c in &mut resp.coordinators {
            if !g.allows(op::DESCRIBE, resource_type, &c.key) {
                c.error_code = denied;
                c.node_id = BrokerId(-1);
                c.host = StrBytes::default();
                c.port = -1;
            }
        }
    } else if !g.allows(op::DESCRIBE, resource_type, &single_key) {
        resp = FindCoordinatorResponse::default()
            .with_error_code(denied)
            .with_error_message(super::default_message(denied))
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    resp
}

/// Kafka: KafkaApis.handleJoinGroupRequest (READ on the group)
pub fn may_join(g: &Guard<'_>, req: &JoinGroupRequest) -> Option<JoinGroupResponse> {
    (!g.allows_group(op::READ, &req.group_id)).then(|| {
        JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1)
            .with_protocol_name(None)
    })
}

/// Kafka: KafkaApis.handleSyncGroupRequest (READ on the group)
pub fn may_sync(g: &Guard<'_>, req: &SyncGroupRequest) -> Option<SyncGroupResponse> {
    (!g.allows_group(op::READ, &req.group_id))
        .then(|| SyncGroupResponse::default().with_error_code(GROUP_DENIED))
}

/// Kafka: KafkaApis.handleHeartbeatRequest (READ on the group)
pub fn may_heartbeat(g: &Guard<'_>, req: &HeartbeatRequest) -> Option<HeartbeatResponse> {
    (!g.allows_group(op::READ, &req.group_id))
        .then(|| HeartbeatResponse::default().with_error_code(GROUP_DENIED))
}

/// Kafka: KafkaApis.handleLeaveGroupRequest (READ on the group)
pub fn may_leave(g: &Guard<'_>, req: &LeaveGroupRequest) -> Option<LeaveGroupResponse> {
    (!g.allows_group(op::READ, &req.group_id))
        .then(|| LeaveGroupResponse::default().with_error_code(GROUP_DENIED))
}

/// Kafka: KafkaApis.handleOffsetCommitRequest (READ on the group, else every partition
/// GROUP_AUTHORIZATION_FAILED; then READ per topic)
pub fn offset_commit(
    g: &Guard<'_>,
    mut req: OffsetCommitRequest,
    handle: impl FnOnce(OffsetCommitRequest) -> OffsetCommitResponse,
) -> OffsetCommitResponse {
    let group_ok = g.allows_group(op::READ, &req.group_id);
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        group_ok && g.allows_topic(op::READ, &t.name)
    });
    req.topics = kept;
    let mut resp = if req.topics.is_empty() {
        OffsetCommitResponse::default()
    } else {
        handle(req)
    };
    let code = if group_ok { TOPIC_DENIED } else { GROUP_DENIED };
    resp.topics.extend(refused.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                offset_commit_response::OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            })
            .collect();
        offset_commit_response::OffsetCommitResponseTopic::default()
            .with_name(t.name)
            .with_topic_id(t.topic_id)
            .with_partitions(partitions)
    }));
    resp
}

/// An OffsetFetch v0-7 answer for a topic whose every partition is refused with `code`.
fn denied_topic(
    t: offset_fetch_request::OffsetFetchRequestTopic,
    code: i16,
) -> offset_fetch_response::OffsetFetchResponseTopic {
    let partitions = t
        .partition_indexes
        .iter()
        .map(|&p| {
            offset_fetch_response::OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(-1)
                .with_error_code(code)
        })
        .collect();
    offset_fetch_response::OffsetFetchResponseTopic::default()
        .with_name(t.name)
        .with_partitions(partitions)
}

/// Kafka: KafkaApis.handleOffsetFetchRequestFromCoordinator (DESCRIBE on each group;
/// topics named: DESCRIBE per topic, else TOPIC_AUTHORIZATION_FAILED per partition; all
/// topics: the undescribable ones left out)
pub fn offset_fetch(
    g: &Guard<'_>,
    mut req: OffsetFetchRequest,
    version: i16,
    handle: impl FnOnce(OffsetFetchRequest) -> OffsetFetchResponse,
) -> OffsetFetchResponse {
    if g.open() {
        return handle(req);
    }
    let describable = |t: &str| g.quietly_allows(op::DESCRIBE, resource::TOPIC, t);
    if version < 8 {
        if !g.allows_group(op::DESCRIBE, &req.group_id) {
            return crate::handlers::not_coordinator::offset_fetch_refused(
                req,
                version,
                GROUP_DENIED,
                g.release,
            );
        }
        let mut refused = Vec::new();
        if let Some(topics) = req.topics.take() {
            let (kept, denied) = split(topics, |t| g.allows_topic(op::DESCRIBE, &t.name));
            req.topics = Some(kept);
            refused = denied;
        }
        let mut resp = handle(req);
        resp.topics.retain(|t| describable(&t.name));
        resp.topics
            .extend(refused.into_iter().map(|t| denied_topic(t, TOPIC_DENIED)));
        return resp;
    }
    let (groups, denied_groups) = split(std::mem::take(&mut req.groups), |grp| {
        g.allows_group(op::DESCRIBE, &grp.group_id)
    });
    let mut refused_topics = Vec::new();
    req.groups = groups
        .into_iter()
        .map(|mut grp| {
            if let Some(topics) = grp.topics.take() {
                let (kept, denied) = split(topics, |t| g.allows_topic(op::DESCRIBE, &t.name));
                grp.topics = Some(kept);
                refused_topics.push((grp.group_id.clone(), denied));
            }
            grp
        })
        .collect();
    let mut resp = if req.groups.is_empty() {
        OffsetFetchResponse::default()
    } else {
        handle(req)
    };
    for grp in &mut resp.groups {
        grp.topics.retain(|t| describable(&t.name));
        // Each request entry's denied topics go to one answer for its group.
        let mine: Vec<_> = {
            let (mine, rest) = std::mem::take(&mut refused_topics)
                .into_iter()
                .partition(|(id, _)| id == &grp.group_id);
            refused_topics = rest;
            mine
        };
        for (_, denied) in mine.iter().take(1) {
            grp.topics.extend(denied.iter().map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&p| {
                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_error_code(TOPIC_DENIED)
                    })
                    .collect();
                offset_fetch_response::OffsetFetchResponseTopics::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions)
            }));
        }
    }
    resp.groups.extend(denied_groups.into_iter().map(|grp| {
        offset_fetch_response::OffsetFetchResponseGroup::default()
            .with_group_id(grp.group_id)
            .with_error_code(GROUP_DENIED)
    }));
    resp
}

/// Kafka: KafkaApis.handleOffsetDeleteRequest (DELETE on the group, READ per topic)
pub fn offset_delete(
    g: &Guard<'_>,
    mut req: OffsetDeleteRequest,
    handle: impl FnOnce(OffsetDeleteRequest) -> OffsetDeleteResponse,
) -> OffsetDeleteResponse {
    if !g.allows_group(op::DELETE, &req.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
    }
    let (kept, refused) = split(std::mem::take(&mut req.topics), |t| {
        g.allows_topic(op::READ, &t.name)
    });
    req.topics = kept;
    let mut resp = handle(req);
    // Kafka: OffsetDeleteResponse.Builder.merge (a group-level error replaces the rest).
    if resp.error_code != 0 {
        return resp;
    }
    resp.topics.extend(refused.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                offset_delete_response::OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
            })
            .collect();
        offset_delete_response::OffsetDeleteResponseTopic::default()
            .with_name(t.name)
            .with_partitions(partitions)
    }));
    resp
}

/// Kafka: KafkaApis.handleDescribeGroupsRequest (DESCRIBE per group)
pub fn describe_groups(
    g: &Guard<'_>,
    mut req: DescribeGroupsRequest,
    handle: impl FnOnce(DescribeGroupsRequest) -> DescribeGroupsResponse,
) -> DescribeGroupsResponse {
    let (kept, refused) = split(std::mem::take(&mut req.groups), |id| {
        g.allows_group(op::DESCRIBE, id)
    });
    req.groups = kept;
    let mut resp = handle(req);
    for grp in &mut resp.groups {
        if grp.error_code == 0 && grp.authorized_operations != i32::MIN {
            let operations = crate::handlers::acls::group_operations(g.release);
            grp.authorized_operations =
                g.operations(resource::GROUP, &grp.group_id, operations) & operations;
        }
    }
    resp.groups.extend(refused.into_iter().map(|id| {
        describe_groups_response::DescribedGroup::default()
            .with_group_id(id)
            .with_error_code(GROUP_DENIED)
            .with_authorized_operations(i32::MIN)
    }));
    resp
}

/// Kafka: KafkaApis.handleListGroupsRequest (CLUSTER DESCRIBE lists every group, else
/// the groups the caller may DESCRIBE)
pub fn list_groups(
    g: &Guard<'_>,
    req: ListGroupsRequest,
    handle: impl FnOnce(ListGroupsRequest) -> ListGroupsResponse,
) -> ListGroupsResponse {
    let mut resp = handle(req);
    if !g.quietly_allows(op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
        resp.groups
            .retain(|grp| g.quietly_allows(op::DESCRIBE, resource::GROUP, &grp.group_id));
    }
    resp
}

/// Kafka: KafkaApis.handleDeleteGroupsRequest (DELETE per group)
pub fn delete_groups(
    g: &Guard<'_>,
    mut req: DeleteGroupsRequest,
    handle: impl FnOnce(DeleteGroupsRequest) -> DeleteGroupsResponse,
) -> DeleteGroupsResponse {
    let (kept, refused) = split(std::mem::take(&mut req.groups_names), |id| {
        g.allows_group(op::DELETE, id)
    });
    req.groups_names = kept;
    let mut resp = handle(req);
    resp.results.extend(refused.into_iter().map(|id| {
        delete_groups_response::DeletableGroupResult::default()
            .with_group_id(id)
            .with_error_code(GROUP_DENIED)
    }));
    resp
}
