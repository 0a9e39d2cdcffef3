//! SyncGroup: members collect their assignment, the leader hands it out.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::types::NONE;
use super::{Group, GroupState, Outcome, ResponderId, SyncParams, SyncResult};

impl Group {
    // ---- SyncGroup -------------------------------------------------------------------

    /// Handles a SyncGroup; the answer to `responder` is among the outcomes, now or later.
    pub fn sync(&mut self, now: Instant, p: SyncParams, responder: ResponderId) -> Vec<Outcome> {
        let mut out = Vec::new();
        if let Some(result) = self.do_sync(now, p, responder, &mut out) {
            out.push(Outcome::Sync(responder, result));
        }
        out
    }

    fn do_sync(
        &mut self,
        now: Instant,
        p: SyncParams,
        responder: ResponderId,
        out: &mut Vec<Outcome>,
    ) -> Option<SyncResult> {
        use ResponseError as E;
        if self.state == GroupState::Dead {
            return Some(SyncResult::error(E::CoordinatorNotAvailable));
        }
        if self.is_static_member_fenced(p.group_instance_id.as_deref(), &p.member_id) {
            return Some(SyncResult::error(E::FencedInstanceId));
        }
        let Some(idx) = self.member_index(&p.member_id) else {
            return Some(SyncResult::error(E::UnknownMemberId));
        };
        if p.generation_id != self.generation {
            return Some(SyncResult::error(E::IllegalGeneration));
        }
        if p.protocol_type.is_some() && p.protocol_type != self.protocol_type
            || p.protocol_name.is_some() && p.protocol_name != self.protocol_name
        {
            return Some(SyncResult::error(E::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Some(SyncResult::error(E::UnknownMemberId)),
            GroupState::PreparingRebalance => Some(SyncResult::error(E::RebalanceInProgress)),
            GroupState::CompletingRebalance => {
                self.synced(&p.member_id);
                if let Some(old) = self.members[idx].awaiting_sync.replace(responder) {
                    out.push(Outcome::Sync(
                        old,
                        SyncResult::error(E::RebalanceInProgress),
                    ));
                }
                if self.leader.as_deref() == Some(p.member_id.as_str()) {
                    let mut given: BTreeMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.dirty = true;
                    self.state = GroupState::Stable;
                    for m in &mut self.members {
                        if let Some(r) = m.awaiting_sync.take() {
                            out.push(Outcome::Sync(
                                r,
                                SyncResult {
                                    error: NONE,
                                    protocol_type: self.protocol_type.clone(),
                                    protocol_name: self.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                },
                            ));
                            m.session_deadline = now + m.session_timeout;
                        }
                    }
                }
                None
            }
            GroupState::Stable => {
                self.synced(&p.member_id);
                let m = &mut self.members[idx];
                m.session_deadline = now + m.session_timeout;
                Some(SyncResult {
                    error: NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
        }
    }

    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }
}
