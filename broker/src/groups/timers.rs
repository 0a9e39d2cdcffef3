//! Group deadlines: firing a group's overdue timers before any call on it, persisting what
//! changed, and the task that sleeps until the earliest deadline.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::state::{Group, Outcome};
use super::store::Record;
use super::{Inner, Shared};

impl Inner {
    /// Fires the group's overdue timers, runs `op`, persists the group if its durable
    /// view changed, and returns every outcome (timers' first).
    pub(super) fn on_group(
        &mut self,
        now: Instant,
        group_id: &str,
        op: impl FnOnce(&mut Group) -> Vec<Outcome>,
    ) -> Vec<Outcome> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Vec::new();
        };
        let mut outcomes = group.tick(now);
        outcomes.extend(op(group));
        self.persist_group(group_id);
        outcomes
    }

    pub(super) fn persist_group(&mut self, group_id: &str) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if !group.take_dirty() {
            return;
        }
        let record = Record::Group(group.to_record());
        if let Err(error) = self.store.append(&[record]) {
            tracing::error!(group = group_id, %error, "Cannot persist group metadata.");
        }
    }

    /// Fires every group's overdue timers.
    pub(super) fn tick_all(&mut self, now: Instant) {
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let outcomes = self.on_group(now, &id, |_| Vec::new());
            self.dispatch(outcomes);
        }
        self.expire_offsets_if_due(now);
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let groups = self.groups.values().filter_map(Group::next_deadline).min();
        Some(groups.map_or(self.next_expiry_check, |d| d.min(self.next_expiry_check)))
    }
}

/// Sleeps until the earliest group deadline (or a re-arm), fires due timers, repeats;
/// ends when the coordinator is dropped.
pub(super) async fn run_timers(shared: Weak<Shared>, notify: Arc<Notify>) {
    loop {
        let deadline = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut inner = shared
                .inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            inner.tick_all(Instant::now());
            inner.next_deadline()
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = notify.notified() => {}
                }
            }
            None => notify.notified().await,
        }
    }
}
