//! Group requests that reach a node other than the group coordinator (the lowest live
//! node, see [`crate::cluster`]): answered NOT_COORDINATOR, as Kafka answers them (Kafka:
//! GroupCoordinator.validateGroupStatus, `!isCoordinatorForGroup`), so a client that skips
//! FindCoordinator, or keeps talking to a node after the coordinator moved, is caught here
//! as it would be on a real cluster. ListGroups lists only the groups a node coordinates
//! (Kafka: GroupCoordinator.handleListGroups), so elsewhere the list is empty. The same
//! answers carry COORDINATOR_LOAD_IN_PROGRESS on the coordinator while it loads its groups
//! after a start (`--emulate-coordinator-load-ms`; Kafka: validateGroupStatus,
//! `isCoordinatorLoadInProgress`), ListGroups' with no groups from Kafka 4.0 on.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::versions::KafkaRelease;

/// What a node that does not coordinate groups answers.
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();

pub fn join_group(req: JoinGroupRequest, code: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(req.member_id)
}

pub fn sync_group(_: SyncGroupRequest, code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

pub fn heartbeat(_: HeartbeatRequest, code: i16) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_group(_: LeaveGroupRequest, code: i16) -> LeaveGroupResponse {
    LeaveGroupResponse::default().with_error_code(code)
}

/// Every partition of the commit fails (Kafka: GroupCoordinator.handleCommitOffsets).
pub fn offset_commit(req: OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// An OffsetFetch refused for its group with `code`. v8+: the code per group, without
/// topics; v2-7: the top-level code alone. v1, which has no top-level code: the code on
/// every partition asked for up to Kafka 3.0 (OffsetFetchRequest.getErrorResponse); from
/// 3.5 on nothing (KafkaApis.handleOffsetFetchRequestFromCoordinator answers the refused
/// group without topics, and OffsetFetchResponse lists only those). v0: the rows always.
pub fn offset_fetch_refused(
    req: OffsetFetchRequest,
    version: i16,
    code: i16,
    release: KafkaRelease,
) -> OffsetFetchResponse {
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(
            req.groups
                .into_iter()
                .map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code)
                })
                .collect(),
        );
    }
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let resp = OffsetFetchResponse::default();
    if version == 1 && release > KafkaRelease::V3_0 {
        return resp;
    }
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::default()))
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    resp.with_topics(topics)
}

/// Kafka: GroupCoordinatorService.deleteOffsets (the empty group id is refused before
/// the coordinator is looked for).
pub fn offset_delete(req: OffsetDeleteRequest, code: i16) -> OffsetDeleteResponse {
    let code = if req.group_id.is_empty() {
        ResponseError::InvalidGroupId.code()
    } else {
        code
    };
    OffsetDeleteResponse::default().with_error_code(code)
}

pub fn describe_groups(req: DescribeGroupsRequest, code: i16) -> DescribeGroupsResponse {
    DescribeGroupsResponse::default().with_groups(
        req.groups
            .into_iter()
            .map(|g| {
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

pub fn delete_groups(req: DeleteGroupsRequest, code: i16) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        req.groups_names
            .into_iter()
            .map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

/// No group is coordinated here (`code` 0), or the groups are still loading: Kafka's
/// GroupCoordinatorService.listGroups answers the error without groups.
pub fn list_groups(_: ListGroupsRequest, code: i16) -> ListGroupsResponse {
    ListGroupsResponse::default().with_error_code(code)
}
