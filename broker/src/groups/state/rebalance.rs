//! Rebalances of a group: preparing one, completing the join phase (generation bump,
//! leader election) and choosing the group protocol.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::{Group, GroupState, InitialDelay, Outcome, SyncResult};

impl Group {
    // ---- rebalance -------------------------------------------------------------------

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_millis(1))
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, out);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        if self.state == GroupState::CompletingRebalance {
            // Followers waiting for an assignment that will never come must rejoin.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(r) = m.awaiting_sync.take() {
                    out.push(Outcome::Sync(
                        r,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                    m.session_deadline = now + m.session_timeout;
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_timeout = self.rebalance_timeout();
        let delay = Duration::from_millis(self.config.initial_rebalance_delay_ms);
        if self.state == GroupState::Empty && !delay.is_zero() {
            self.initial_delay = Some(InitialDelay {
                remaining: rebalance_timeout.saturating_sub(delay),
                new_member_added: false,
            });
            self.join_deadline = Some(now + delay);
        } else {
            self.initial_delay = None;
            self.join_deadline = Some(now + rebalance_timeout);
        }
        self.state = GroupState::PreparingRebalance;
    }

    pub(super) fn try_complete_join(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.pending_members.is_empty()
            && self.members.iter().all(|m| m.awaiting_join.is_some())
        {
            self.complete_join(now, out);
        }
    }

    pub(super) fn complete_join(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        self.join_deadline = None;
        self.initial_delay = None;
        // Dynamic members that did not rejoin are gone; static ones stay until their
        // session expires.
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Only static members that have not rejoined: wait another round.
            self.join_deadline = Some(now + self.rebalance_timeout());
            return;
        }
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            self.empty_since = Some(now);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        self.pending_sync = self.members.iter().map(|m| m.id.clone()).collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        for idx in 0..self.members.len() {
            let Some(r) = self.members[idx].awaiting_join.take() else {
                continue;
            };
            // The leader's member list is built once, in its own result.
            out.push(Outcome::Join(r, self.current_join_result(idx, true)));
            let m = &mut self.members[idx];
            m.session_deadline = now + m.session_timeout;
        }
    }

    /// Keeps the leader if it rejoined, else picks the first member that did.
    fn elect_joined_leader(&mut self) -> bool {
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.iter().find(|m| &m.id == l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if leader_joined {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Each member votes for its most preferred candidate; ties go to the earlier
    /// candidate.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(p, _)| candidates.iter().position(|c| c == p))
            {
                votes[i] += 1;
            }
        }
        let best = (0..candidates.len()).max_by_key(|&i| (votes[i], std::cmp::Reverse(i)));
        best.map(|i| candidates[i].clone())
    }

    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }
}
