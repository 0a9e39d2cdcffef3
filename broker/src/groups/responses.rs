//! Translation between kafka-protocol group requests/responses and the state machine's
//! version-independent types, shaped per API version (fields a version lacks are left at
//! their defaults, because encoding a set out-of-version field fails).
//!
//! No group logic lives here.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::state::{JoinParams, JoinResult, LeaveMember, SyncParams, SyncResult};

fn s(v: String) -> StrBytes {
    StrBytes::from_string(v)
}

/// JoinGroup request → params; a member id for a newcomer is `<client_id>-<uuid>`, or
/// `<group_instance_id>-<uuid>` for a static member.
pub(super) fn join_params(
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinParams {
    JoinParams {
        version,
        member_id: req.member_id.to_string(),
        // Kafka: ClassicGroup.generateMemberId (a static member's id starts with its
        // instance id).
        new_member_id: format!(
            "{}-{}",
            req.group_instance_id.as_deref().unwrap_or(client_id),
            uuid::Uuid::new_v4()
        ),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    }
}

pub(super) fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.map(s)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            r.protocol_type.map(s)
        } else {
            None
        })
        // Nullable only from v7; older versions need a string.
        .with_protocol_name(if version >= 7 {
            r.protocol_name.map(s)
        } else {
            Some(s(r.protocol_name.unwrap_or_default()))
        })
        .with_leader(s(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(s(r.member_id))
        .with_members(members)
}

pub(super) fn sync_params(req: SyncGroupRequest) -> SyncParams {
    SyncParams {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    }
}

pub(super) fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let (protocol_type, protocol_name) = if version >= 5 {
        (r.protocol_type.map(s), r.protocol_name.map(s))
    } else {
        (None, None)
    };
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_assignment(r.assignment)
}

/// The members a LeaveGroup names: v0-2 one member id, v3+ the `members` batch.
pub(super) fn leave_members(req: &LeaveGroupRequest, version: i16) -> Vec<LeaveMember> {
    if version < 3 {
        vec![LeaveMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    } else {
        req.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    }
}

/// `errors`: one code per member, or a group-level error.
pub(super) fn leave_response(
    leaving: &[LeaveMember],
    errors: Result<Vec<i16>, i16>,
    version: i16,
) -> LeaveGroupResponse {
    match errors {
        Err(group_error) => LeaveGroupResponse::default().with_error_code(group_error),
        Ok(errors) if version < 3 => {
            // One member: its error is the top-level error (as Kafka does for v0-2).
            let error = errors.first().copied().unwrap_or(0);
            LeaveGroupResponse::default().with_error_code(error)
        }
        Ok(errors) => LeaveGroupResponse::default().with_members(
            leaving
                .iter()
                .zip(errors)
                .map(|(m, error)| {
                    MemberResponse::default()
                        .with_member_id(s(m.member_id.clone()))
                        .with_group_instance_id(m.group_instance_id.clone().map(s))
                        .with_error_code(error)
                })
                .collect(),
        ),
    }
}
