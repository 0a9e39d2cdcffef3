//! Heartbeat, LeaveGroup and the group-side checks of an OffsetCommit.

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::types::{code, NONE};
use super::{Group, GroupState, JoinResult, LeaveMember, Outcome, SyncResult};

impl Group {
    // ---- Heartbeat, LeaveGroup, OffsetCommit checks ---------------------------------

    /// Handles a Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        use ResponseError as E;
        if self.state == GroupState::Dead {
            return code(E::CoordinatorNotAvailable);
        }
        if self.is_static_member_fenced(group_instance_id, member_id) {
            return code(E::FencedInstanceId);
        }
        let Some(idx) = self.member_index(member_id) else {
            return code(E::UnknownMemberId);
        };
        if generation_id != self.generation {
            return code(E::IllegalGeneration);
        }
        let m = &mut self.members[idx];
        match self.state {
            GroupState::Empty | GroupState::Dead => code(E::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.session_deadline = now + m.session_timeout;
                code(E::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now + m.session_timeout;
                NONE
            }
        }
    }

    /// Handles the members of a LeaveGroup; returns one error code per member (in order)
    /// and the outcomes of requests the departures answered.
    pub fn leave(&mut self, now: Instant, leaving: &[LeaveMember]) -> (Vec<i16>, Vec<Outcome>) {
        use ResponseError as E;
        let mut out = Vec::new();
        let mut errors = Vec::with_capacity(leaving.len());
        for l in leaving {
            if self.state == GroupState::Dead {
                errors.push(code(E::CoordinatorNotAvailable));
                continue;
            }
            let target = if l.member_id.is_empty() {
                // Administrative removal by group.instance.id.
                match l
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i))
                {
                    Some(id) => Ok(id.clone()),
                    None => Err(code(E::UnknownMemberId)),
                }
            } else if self.pending_members.remove(&l.member_id).is_some() {
                self.try_complete_join(now, &mut out);
                errors.push(NONE);
                continue;
            } else if self.is_static_member_fenced(l.group_instance_id.as_deref(), &l.member_id) {
                Err(code(E::FencedInstanceId))
            } else if !self.has_member(&l.member_id) {
                Err(code(E::UnknownMemberId))
            } else {
                Ok(l.member_id.clone())
            };
            match target {
                Ok(id) => {
                    if let Some(m) = self.remove_member(&id) {
                        if let Some(r) = m.awaiting_join {
                            out.push(Outcome::Join(r, JoinResult::error(&id, E::UnknownMemberId)));
                        }
                        if let Some(r) = m.awaiting_sync {
                            out.push(Outcome::Sync(r, SyncResult::error(E::UnknownMemberId)));
                        }
                    }
                    self.on_member_removed(now, &mut out);
                    errors.push(NONE);
                }
                Err(e) => errors.push(e),
            }
        }
        (errors, out)
    }

    /// Who commits, by the checks OffsetCommit and TxnOffsetCommit share (Kafka:
    /// ClassicGroup.validateOffsetCommit): a simple commit to an Empty group (generation
    /// below 0, accepted before any member check), a member (its id, instance and
    /// generation checked), or no member named.
    fn committer(
        &self,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<Committer, i16> {
        use ResponseError as E;
        if self.state == GroupState::Dead {
            return Err(code(E::CoordinatorNotAvailable));
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(Committer::Simple);
        }
        if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() {
            return Ok(Committer::Unnamed);
        }
        if self.is_static_member_fenced(group_instance_id, member_id) {
            return Err(code(E::FencedInstanceId));
        }
        if !self.has_member(member_id) {
            return Err(code(E::UnknownMemberId));
        }
        if generation_id != self.generation {
            return Err(code(E::IllegalGeneration));
        }
        Ok(Committer::Member)
    }

    /// Checks an OffsetCommit against the group (Kafka's `validateOffsetCommit` plus the
    /// state rules); a valid member commit also counts as a heartbeat.
    pub fn validate_offset_commit(
        &mut self,
        now: Instant,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), i16> {
        use ResponseError as E;
        match self.committer(generation_id, member_id, group_instance_id)? {
            Committer::Simple => return Ok(()),
            // Only members may commit to a group that has members.
            Committer::Unnamed if self.state != GroupState::Empty => {
                return Err(code(E::UnknownMemberId))
            }
            Committer::Unnamed | Committer::Member => {}
        }
        match self.state {
            GroupState::CompletingRebalance => Err(code(E::RebalanceInProgress)),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(idx) = self.member_index(member_id) {
                    let m = &mut self.members[idx];
                    m.session_deadline = now + m.session_timeout;
                }
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }

    /// Checks a TxnOffsetCommit against the group: the member checks only, no rebalance or
    /// membership-state rules (Kafka: ClassicGroup.validateOffsetCommit with
    /// isTransactional).
    pub fn validate_txn_offset_commit(
        &self,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), i16> {
        self.committer(generation_id, member_id, group_instance_id)
            .map(|_| ())
    }
}

/// Who an offset commit comes from ([`Group::committer`]).
enum Committer {
    Simple,
    Member,
    Unnamed,
}
