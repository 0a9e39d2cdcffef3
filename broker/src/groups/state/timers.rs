//! Deadlines of a group: session expiry, KIP-394 pending ids, the (initial) rebalance
//! delay and the pending-SyncGroup expiry. Time is passed in; nothing sleeps here.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::{Group, GroupState, InitialDelay, Outcome, SyncResult};

impl Group {
    // ---- timers ----------------------------------------------------------------------

    /// The earliest instant at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self
            .members
            .iter()
            .filter(|m| !m.is_parked())
            .map(|m| m.session_deadline);
        let join = self
            .join_deadline
            .filter(|_| self.state == GroupState::PreparingRebalance);
        self.pending_members
            .values()
            .copied()
            .chain(members)
            .chain(join)
            .chain(self.sync_deadline)
            .min()
    }

    /// Fires every timer due at or before `now`, in deadline order, each as of its own
    /// deadline (so a late tick behaves like a punctual one).
    pub fn tick(&mut self, now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        while let Some(at) = self.next_deadline().filter(|d| *d <= now) {
            self.fire(at, &mut out);
        }
        out
    }

    fn fire(&mut self, at: Instant, out: &mut Vec<Outcome>) {
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.pending_members.remove(id);
        }
        if !expired.is_empty() {
            self.try_complete_join(at, out);
        }
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.is_parked() && m.session_deadline <= at)
            .map(|m| m.id.clone())
            .collect();
        for id in dead {
            tracing::info!(group = %self.id, member = %id, "Member session expired.");
            self.remove_member(&id);
            self.on_member_removed(at, out);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= at)
        {
            match self.initial_delay {
                Some(delay) if delay.new_member_added && !delay.remaining.is_zero() => {
                    let step = Duration::from_millis(self.config.initial_rebalance_delay_ms)
                        .min(delay.remaining);
                    self.initial_delay = Some(InitialDelay {
                        remaining: delay.remaining - step,
                        new_member_added: false,
                    });
                    self.join_deadline = Some(at + step);
                }
                _ => self.complete_join(at, out),
            }
        }
        if self.sync_deadline.is_some_and(|d| d <= at) {
            self.sync_deadline = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !self.pending_sync.is_empty()
            {
                let missing: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                for id in missing {
                    tracing::info!(group = %self.id, member = %id, "Member never sent SyncGroup.");
                    if let Some(m) = self.remove_member(&id) {
                        if let Some(r) = m.awaiting_sync {
                            out.push(Outcome::Sync(
                                r,
                                SyncResult::error(ResponseError::UnknownMemberId),
                            ));
                        }
                    }
                }
                self.prepare_rebalance(at, out);
                self.try_complete_join(at, out);
            }
        }
    }
}
