//! Group requests on a node that does not coordinate groups, or on the coordinator while
//! it loads them: authorized first, as KafkaApis does, then answered NOT_COORDINATOR or
//! COORDINATOR_LOAD_IN_PROGRESS. And what KafkaApis checks or shapes of group requests
//! before and after the coordinator, on every node.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{nulls, route_checked, sync, Outcome};
use crate::authz::{self, Guard};
use crate::handlers;
use crate::state::Broker;
use crate::versions::KafkaRelease;

pub(super) fn is_group_api(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::OffsetDelete
            | ApiKey::DescribeGroups
            | ApiKey::ListGroups
            | ApiKey::DeleteGroups
    )
}

/// Kafka: KafkaApis.handleSyncGroupRequest — from v5 on a SyncGroup names its protocol
/// type and name (SyncGroupRequest.areMandatoryProtocolTypeAndNamePresent), checked before
/// authorization: INCONSISTENT_GROUP_PROTOCOL when one is null.
pub(super) fn sync_without_protocol(
    req: &SyncGroupRequest,
    version: i16,
) -> Option<SyncGroupResponse> {
    (version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none())).then(|| {
        SyncGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code())
    })
}

/// Kafka: JoinGroupResponse's constructor — the protocol name is not nullable below v7 (a
/// null one, as in every refusal, is sent as ""), and from v7 on "" is sent as null.
pub(super) fn join_answer(mut resp: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    match &resp.protocol_name {
        None if version < 7 => resp.protocol_name = Some(StrBytes::default()),
        Some(name) if version >= 7 && name.is_empty() => resp.protocol_name = None,
        _ => {}
    }
    resp
}

/// Kafka: KafkaApis.handleDeleteGroupsRequest — a group named twice is deleted and
/// answered once (`distinct`, before authorization).
pub(super) fn distinct_groups(req: &mut DeleteGroupsRequest) {
    let mut seen = std::collections::HashSet::new();
    req.groups_names.retain(|g| seen.insert(g.clone()));
}

/// The refusal a group request gets before it reaches the groups: NOT_COORDINATOR on a
/// node that does not coordinate them, COORDINATOR_LOAD_IN_PROGRESS on the coordinator
/// while it loads them after a start (`--emulate-coordinator-load-ms`); none otherwise.
pub(super) fn refusal(broker: &Broker) -> Option<i16> {
    if broker.config.node_id != broker.cluster.coordinator().node_id {
        Some(handlers::not_coordinator::NOT_COORDINATOR)
    } else if std::time::Instant::now() < broker.groups_loading_until {
        Some(ResponseError::CoordinatorLoadInProgress.code())
    } else {
        None
    }
}

/// A group request refused with `code` ([`refusal`]): authorized first, as KafkaApis
/// does, and checked as KafkaApis and GroupCoordinatorService check before they ask the
/// coordinator.
pub(super) async fn refused(
    broker: &Broker,
    g: &Guard<'_>,
    (frame, corr, version): (&mut Bytes, i32, i16),
    key: ApiKey,
    code: i16,
) -> Outcome {
    use authz::groups as az;
    use handlers::not_coordinator as nc;
    // A node that coordinates no group lists none, without an error.
    let list_code = if code == nc::NOT_COORDINATOR { 0 } else { code };
    match key {
        ApiKey::JoinGroup => {
            sync(frame, corr, version, |r| {
                let resp = az::may_join(g, &r)
                    .or_else(|| broker.groups.refuse_join(&r, version))
                    .unwrap_or_else(|| nc::join_group(r, code));
                join_answer(resp, version)
            })
            .await
        }
        ApiKey::SyncGroup => {
            sync(frame, corr, version, |r| {
                sync_without_protocol(&r, version)
                    .or_else(|| az::may_sync(g, &r))
                    .unwrap_or_else(|| nc::sync_group(r, code))
            })
            .await
        }
        ApiKey::Heartbeat => {
            sync(frame, corr, version, |r| {
                az::may_heartbeat(g, &r).unwrap_or_else(|| nc::heartbeat(r, code))
            })
            .await
        }
        ApiKey::LeaveGroup => {
            sync(frame, corr, version, |r| {
                az::may_leave(g, &r).unwrap_or_else(|| nc::leave_group(r, code))
            })
            .await
        }
        ApiKey::OffsetCommit => {
            sync(frame, corr, version, |r| {
                az::offset_commit(g, r, |r| nc::offset_commit(r, code))
            })
            .await
        }
        ApiKey::OffsetFetch => {
            route_checked(frame, corr, version, nulls::offset_fetch, |r| {
                std::future::ready(az::offset_fetch(g, r, version, |r| {
                    nc::offset_fetch_refused(r, version, code, g.release)
                }))
            })
            .await
        }
        ApiKey::OffsetDelete => {
            sync(frame, corr, version, |r| {
                az::offset_delete(g, r, |r| nc::offset_delete(r, code))
            })
            .await
        }
        ApiKey::DescribeGroups => {
            sync(frame, corr, version, |r| {
                az::describe_groups(g, r, |r| nc::describe_groups(r, code))
            })
            .await
        }
        ApiKey::ListGroups => {
            sync(frame, corr, version, |r| {
                az::list_groups(g, r, |r| {
                    // Kafka before 4.0 (GroupCoordinator.handleListGroups) lists the groups
                    // loaded so far beside COORDINATOR_LOAD_IN_PROGRESS; 4.x's
                    // GroupCoordinatorService.listGroups answers the error alone.
                    if list_code != 0 && g.release < KafkaRelease::V4_0 {
                        broker
                            .groups
                            .list_groups(r, version)
                            .with_error_code(list_code)
                    } else {
                        nc::list_groups(r, list_code)
                    }
                })
            })
            .await
        }
        ApiKey::DeleteGroups => {
            sync(frame, corr, version, |mut r| {
                distinct_groups(&mut r);
                az::delete_groups(g, r, |r| nc::delete_groups(r, code))
            })
            .await
        }
        other => Outcome::Close(format!("{other:?} is not a group API")),
    }
}
