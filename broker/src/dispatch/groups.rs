//! Group requests on a node that does not coordinate groups: authorized first, as
//! KafkaApis does, then answered NOT_COORDINATOR.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::{nulls, route_checked, sync, Outcome};
use crate::authz::{self, Guard};
use crate::handlers;

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

/// A group request on a node that does not coordinate groups: authorized first, as
/// KafkaApis does, then NOT_COORDINATOR.
pub(super) async fn not_coordinator(
    g: &Guard<'_>,
    frame: &mut Bytes,
    corr: i32,
    version: i16,
    key: ApiKey,
) -> Outcome {
    use authz::groups as az;
    use handlers::not_coordinator as nc;
    match key {
        ApiKey::JoinGroup => {
            sync(frame, corr, version, |r| {
                az::may_join(g, &r).unwrap_or_else(|| nc::join_group(r))
            })
            .await
        }
        ApiKey::SyncGroup => {
            sync(frame, corr, version, |r| {
                az::may_sync(g, &r).unwrap_or_else(|| nc::sync_group(r))
            })
            .await
        }
        ApiKey::Heartbeat => {
            sync(frame, corr, version, |r| {
                az::may_heartbeat(g, &r).unwrap_or_else(|| nc::heartbeat(r))
            })
            .await
        }
        ApiKey::LeaveGroup => {
            sync(frame, corr, version, |r| {
                az::may_leave(g, &r).unwrap_or_else(|| nc::leave_group(r))
            })
            .await
        }
        ApiKey::OffsetCommit => {
            sync(frame, corr, version, |r| {
                az::offset_commit(g, r, nc::offset_commit)
            })
            .await
        }
        ApiKey::OffsetFetch => {
            route_checked(frame, corr, version, nulls::offset_fetch, |r| {
                std::future::ready(az::offset_fetch(g, r, version, |r| {
                    nc::offset_fetch(r, version)
                }))
            })
            .await
        }
        ApiKey::OffsetDelete => {
            sync(frame, corr, version, |r| {
                az::offset_delete(g, r, nc::offset_delete)
            })
            .await
        }
        ApiKey::DescribeGroups => {
            sync(frame, corr, version, |r| {
                az::describe_groups(g, r, nc::describe_groups)
            })
            .await
        }
        ApiKey::ListGroups => {
            sync(frame, corr, version, |r| {
                az::list_groups(g, r, nc::list_groups)
            })
            .await
        }
        ApiKey::DeleteGroups => {
            sync(frame, corr, version, |r| {
                az::delete_groups(g, r, nc::delete_groups)
            })
            .await
        }
        other => Outcome::Close(format!("{other:?} is not a group API")),
    }
}
