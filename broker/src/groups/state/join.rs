//! JoinGroup: new, pending (KIP-394), static (KIP-345) and returning members joining
//! a group, and the join answers built from the current generation.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::types::NONE;
use super::{
    millis, Group, GroupState, JoinParams, JoinResult, JoinedMember, Member, Outcome, ResponderId,
    SyncResult,
};

impl Group {
    // ---- JoinGroup -------------------------------------------------------------------

    /// Handles a JoinGroup; the answer to `responder` is among the outcomes, now or later.
    pub fn join(&mut self, now: Instant, p: JoinParams, responder: ResponderId) -> Vec<Outcome> {
        let mut out = Vec::new();
        if let Some(result) = self.do_join(now, p, responder, &mut out) {
            out.push(Outcome::Join(responder, result));
        }
        out
    }

    fn do_join(
        &mut self,
        now: Instant,
        p: JoinParams,
        responder: ResponderId,
        out: &mut Vec<Outcome>,
    ) -> Option<JoinResult> {
        if self.state == GroupState::Dead {
            return Some(JoinResult::error(
                &p.member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.config.session_timeout_allowed(p.session_timeout_ms) {
            return Some(JoinResult::error(
                &p.member_id,
                ResponseError::InvalidSessionTimeout,
            ));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Some(JoinResult::error(
                &p.member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if p.member_id.is_empty() {
            let new_id = p.new_member_id.clone();
            if p.group_instance_id.is_some() {
                return self.static_join(now, p, new_id, responder, out);
            }
            if p.version >= 4 {
                // KIP-394: hand out an id; the member is pending until it rejoins with it.
                let session = millis(p.session_timeout_ms);
                self.pending_members.insert(new_id.clone(), now + session);
                return Some(JoinResult::error(&new_id, ResponseError::MemberIdRequired));
            }
            self.add_member_and_rebalance(now, p, new_id, responder, out);
            return None;
        }
        if self.pending_members.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            self.add_member_and_rebalance(now, p, id, responder, out);
            return None;
        }
        if self.is_static_member_fenced(p.group_instance_id.as_deref(), &p.member_id) {
            return Some(JoinResult::error(
                &p.member_id,
                ResponseError::FencedInstanceId,
            ));
        }
        let instance_unknown = p
            .group_instance_id
            .as_ref()
            .is_some_and(|i| !self.static_members.contains_key(i));
        let Some(idx) = self
            .member_index(&p.member_id)
            .filter(|_| !instance_unknown)
        else {
            return Some(JoinResult::error(
                &p.member_id,
                ResponseError::UnknownMemberId,
            ));
        };
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now, idx, p, responder, out);
                None
            }
            GroupState::CompletingRebalance => {
                if self.members[idx].protocols == p.protocols {
                    // A retried join: the current generation again.
                    Some(self.current_join_result(idx, true))
                } else {
                    self.update_member_and_rebalance(now, idx, p, responder, out);
                    None
                }
            }
            GroupState::Stable => {
                if self.leader.as_deref() == Some(p.member_id.as_str())
                    || self.members[idx].protocols != p.protocols
                {
                    self.update_member_and_rebalance(now, idx, p, responder, out);
                    None
                } else {
                    Some(self.current_join_result(idx, false))
                }
            }
            GroupState::Empty | GroupState::Dead => Some(JoinResult::error(
                &p.member_id,
                ResponseError::UnknownMemberId,
            )),
        }
    }

    /// A join with no member id but a group.instance.id (KIP-345).
    fn static_join(
        &mut self,
        now: Instant,
        p: JoinParams,
        new_id: String,
        responder: ResponderId,
        out: &mut Vec<Outcome>,
    ) -> Option<JoinResult> {
        let instance = p.group_instance_id.clone().expect("static join");
        let Some(old_id) = self.static_members.get(&instance).cloned() else {
            self.add_member_and_rebalance(now, p, new_id, responder, out);
            return None;
        };
        let Some(idx) = self.member_index(&old_id) else {
            // A stale mapping: treat as a new static member.
            self.static_members.remove(&instance);
            self.add_member_and_rebalance(now, p, new_id, responder, out);
            return None;
        };
        let current_leader = self.leader.clone().unwrap_or_default();
        self.replace_static_member(idx, &new_id, out);
        match self.state {
            GroupState::Stable => {
                let m = &mut self.members[idx];
                m.protocols = p.protocols;
                m.session_timeout = millis(p.session_timeout_ms);
                m.rebalance_timeout = millis(p.rebalance_timeout_ms);
                // The member keeps its client id and host (Kafka: ClassicGroup
                // .replaceStaticMember builds the new member from the removed one's).
                m.session_deadline = now + m.session_timeout;
                if self.select_protocol().as_deref() == self.protocol_name.as_deref() {
                    // Unchanged: no rebalance, the member resumes the current assignment.
                    self.dirty = true;
                    let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                    if p.version >= 9 && is_leader {
                        let mut r = self.current_join_result(idx, true);
                        r.skip_assignment = true;
                        return Some(r);
                    }
                    let mut r = self.current_join_result(idx, false);
                    // The old leader id, so that a replaced leader does not reassign
                    // (its assignment would not be propagated by a Stable group).
                    r.leader = current_leader;
                    return Some(r);
                }
                self.members[idx].awaiting_join = Some(responder);
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, out);
                None
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                // The old id may already be in the leader's hands: rebalance again.
                self.update_member_and_rebalance(now, idx, p, responder, out);
                None
            }
            GroupState::Empty | GroupState::Dead => {
                Some(JoinResult::error(&new_id, ResponseError::UnknownMemberId))
            }
        }
    }

    fn replace_static_member(&mut self, idx: usize, new_id: &str, out: &mut Vec<Outcome>) {
        let m = &mut self.members[idx];
        let old_id = std::mem::replace(&mut m.id, new_id.to_string());
        if let Some(r) = m.awaiting_join.take() {
            out.push(Outcome::Join(
                r,
                JoinResult::error(&old_id, ResponseError::FencedInstanceId),
            ));
        }
        if let Some(r) = m.awaiting_sync.take() {
            out.push(Outcome::Sync(
                r,
                SyncResult::error(ResponseError::FencedInstanceId),
            ));
        }
        if let Some(instance) = &m.instance_id {
            self.static_members
                .insert(instance.clone(), new_id.to_string());
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: Instant,
        p: JoinParams,
        id: String,
        responder: ResponderId,
        out: &mut Vec<Outcome>,
    ) {
        let session_timeout = millis(p.session_timeout_ms);
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(instance) = &p.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.push(Member {
            id,
            instance_id: p.group_instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            session_timeout,
            rebalance_timeout: millis(p.rebalance_timeout_ms),
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(responder),
            awaiting_sync: None,
            session_deadline: now + session_timeout,
        });
        if let Some(delay) = &mut self.initial_delay {
            delay.new_member_added = true;
        }
        self.maybe_prepare_rebalance(now, out);
        self.try_complete_join(now, out);
    }

    fn update_member_and_rebalance(
        &mut self,
        now: Instant,
        idx: usize,
        p: JoinParams,
        responder: ResponderId,
        out: &mut Vec<Outcome>,
    ) {
        let m = &mut self.members[idx];
        m.protocols = p.protocols;
        m.session_timeout = millis(p.session_timeout_ms);
        m.rebalance_timeout = millis(p.rebalance_timeout_ms);
        // Client id and host stay those of the member's first join (Kafka: ClassicGroup
        // .updateMember changes protocols and timeouts only).
        if let Some(old) = m.awaiting_join.replace(responder) {
            // The same member joined again while waiting: the older request is void.
            out.push(Outcome::Join(
                old,
                JoinResult::error(&m.id, ResponseError::RebalanceInProgress),
            ));
        }
        self.maybe_prepare_rebalance(now, out);
        self.try_complete_join(now, out);
    }

    pub(super) fn current_join_result(&self, idx: usize, with_members: bool) -> JoinResult {
        let m = &self.members[idx];
        let is_leader = self.leader.as_deref() == Some(m.id.as_str());
        JoinResult {
            error: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: m.id.clone(),
            skip_assignment: false,
            members: if with_members && is_leader {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    pub(super) fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }
}
