//! Group membership calls for flow ownership ([`crate::mirror::ownership`]): JoinGroup
//! (answering MEMBER_ID_REQUIRED as Kafka's consumer does), SyncGroup, Heartbeat and
//! LeaveGroup of a classic group with kmirror's own protocol type.
//!
//! Each member talks to its coordinator over connections of its own ([`MemberLanes`]): a
//! JoinGroup waits for the whole rebalance, and Kafka serves one request per connection at
//! a time, so on a shared connection it would hold up every other request, another flow's
//! heartbeats included (each Kafka consumer also has its own coordinator connection). Each
//! request is built for the version it is sent at: fields a version lacks stay at their
//! defaults, as kafka-protocol requires.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::errors::ResponseError;
use kmirror_wire::messenger::Messenger;

use super::{ClientError, ClusterClient};

/// The next membership lane; produce and fetch lanes are small numbers.
static NEXT_LANE: AtomicUsize = AtomicUsize::new(1 << 20);

/// A member's two connection lanes to its coordinator: one for joining, syncing and
/// heartbeats, one for leaving (which must not wait behind a JoinGroup).
#[derive(Debug, Clone, Copy)]
pub struct MemberLanes {
    pub member: usize,
    pub leave: usize,
}

impl MemberLanes {
    /// Lanes no other member of this process uses.
    pub fn new() -> Self {
        let member = NEXT_LANE.fetch_add(2, Ordering::Relaxed);
        Self {
            member,
            leave: member + 1,
        }
    }
}

impl Default for MemberLanes {
    fn default() -> Self {
        Self::new()
    }
}

/// kmirror's protocol type: a group of consumers with the same id cannot join it
/// (INCONSISTENT_GROUP_PROTOCOL), nor can a kmirror join theirs.
pub const PROTOCOL_TYPE: &str = "kmirror";
/// The one protocol its members offer.
const PROTOCOL_NAME: &str = "flow-owner";

/// The timeouts a member joins with.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Without a heartbeat for this long the coordinator removes the member.
    pub session: Duration,
    /// How long the coordinator waits for every member to join a rebalance.
    pub rebalance: Duration,
}

/// A JoinGroup's answer.
#[derive(Debug, Clone)]
pub enum JoinAnswer {
    Joined(Joined),
    /// KIP-394 (v4+): a new member is given its id and must join again with it.
    MemberIdRequired(String),
}

/// A completed JoinGroup.
#[derive(Debug, Clone)]
pub struct Joined {
    pub generation_id: i32,
    pub member_id: String,
    /// Whether this member leads the generation (and so assigns).
    pub leader: bool,
    /// Every member's id and metadata (only the leader is told).
    pub members: Vec<(String, Bytes)>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl ClusterClient {
    fn member_error(&self, what: &str, code: i16) -> Result<(), ClientError> {
        match ClientError::from_code(self.name(), what, code, None) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// JoinGroup with `member_id` ("" for a new member), offering `metadata`; the
    /// coordinator answers once the rebalance completes, so it is waited for at least the
    /// rebalance timeout and 5 s more (as Kafka's consumer does: AbstractCoordinator.
    /// sendJoinGroupRequest, JOIN_GROUP_TIMEOUT_LAPSE).
    pub async fn join_group(
        &self,
        m: &Messenger,
        group: &str,
        member_id: &str,
        metadata: Bytes,
        timeouts: Timeouts,
    ) -> Result<JoinAnswer, ClientError> {
        let version = m
            .versions()
            .pick::<JoinGroupRequest>()
            .map_err(|e| self.unsupported(e))?;
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(timeouts.session.as_millis() as i32)
            .with_member_id(s(member_id))
            .with_protocol_type(s(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s(PROTOCOL_NAME))
                .with_metadata(metadata)]);
        if version >= 1 {
            req = req.with_rebalance_timeout_ms(timeouts.rebalance.as_millis() as i32);
        }
        let resp = m
            .enqueue_at(&req, version)
            .await
            .map_err(|e| self.request(e))?
            .waiting_at_least(timeouts.rebalance + Duration::from_secs(5))
            .wait()
            .await
            .map_err(|e| self.request(e))?;
        if resp.error_code == ResponseError::MemberIdRequired.code() {
            return Ok(JoinAnswer::MemberIdRequired(resp.member_id.to_string()));
        }
        self.member_error(&format!("joining group {group}"), resp.error_code)?;
        let member_id = resp.member_id.to_string();
        Ok(JoinAnswer::Joined(Joined {
            generation_id: resp.generation_id,
            leader: resp.leader.as_str() == member_id,
            members: resp
                .members
                .iter()
                .map(|mb| (mb.member_id.to_string(), mb.metadata.clone()))
                .collect(),
            member_id,
        }))
    }

    /// SyncGroup for `joined`; the leader passes every member's assignment. Returns this
    /// member's assignment. v5+ names the protocol type and name, which the coordinator
    /// checks (AbstractCoordinator.onLeaderElected / onJoinFollower set both).
    pub async fn sync_group(
        &self,
        m: &Messenger,
        group: &str,
        joined: &Joined,
        assignments: &[(String, Bytes)],
    ) -> Result<Bytes, ClientError> {
        let version = m
            .versions()
            .pick::<SyncGroupRequest>()
            .map_err(|e| self.unsupported(e))?;
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(s(&joined.member_id))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(member))
                            .with_assignment(assignment.clone())
                    })
                    .collect(),
            );
        if version >= 5 {
            req = req
                .with_protocol_type(Some(s(PROTOCOL_TYPE)))
                .with_protocol_name(Some(s(PROTOCOL_NAME)));
        }
        let resp = m
            .send_at(&req, version)
            .await
            .map_err(|e| self.request(e))?;
        self.member_error(&format!("syncing group {group}"), resp.error_code)?;
        Ok(resp.assignment)
    }

    /// Heartbeat of `joined`'s member in its generation (AbstractCoordinator.
    /// sendHeartbeatRequest).
    pub async fn heartbeat(
        &self,
        m: &Messenger,
        group: &str,
        joined: &Joined,
    ) -> Result<(), ClientError> {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(s(&joined.member_id));
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        self.member_error(&format!("heartbeat in group {group}"), resp.error_code)
    }

    /// LeaveGroup of `member_id`, so the coordinator rebalances at once instead of after
    /// the session timeout (AbstractCoordinator.maybeLeaveGroup).
    pub async fn leave_group(
        &self,
        m: &Messenger,
        group: &str,
        member_id: &str,
    ) -> Result<(), ClientError> {
        let version = m
            .versions()
            .pick::<LeaveGroupRequest>()
            .map_err(|e| self.unsupported(e))?;
        // v3+ (KIP-345) names the leaving members in a list; older versions one member.
        let req = if version >= 3 {
            LeaveGroupRequest::default()
                .with_members(vec![MemberIdentity::default().with_member_id(s(member_id))])
        } else {
            LeaveGroupRequest::default().with_member_id(s(member_id))
        }
        .with_group_id(GroupId(s(group)));
        let resp = m
            .send_at(&req, version)
            .await
            .map_err(|e| self.request(e))?;
        self.member_error(&format!("leaving group {group}"), resp.error_code)?;
        let member_code = resp.members.first().map_or(0, |mb| mb.error_code);
        self.member_error(&format!("leaving group {group}"), member_code)
    }
}
