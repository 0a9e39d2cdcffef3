//! Offset expiry (`offsets.retention.minutes`, KIP-211) and the coordinator's clock.
//!
//! Every `offsets.retention.check.interval.ms` the coordinator drops expired offsets, as
//! Kafka's GroupCoordinatorShard.cleanupGroupMetadata does: offsets of an Empty group expire
//! once the retention has passed since the group became Empty (or, when that is unknown,
//! since the commit); offsets of a simple group (no protocol type, commits only) expire
//! that long after their commit, and so do those of a Stable consumer group (protocol type
//! `consumer`) for topics none of its members subscribes to; an offset committed with an
//! OffsetCommit v2-4 `retention_time_ms` expires at its own time. Other groups with
//! members keep their offsets. An Empty group left without offsets is deleted.
//!
//! The check runs from the timer task and at the start of every offset or group-admin call
//! once due, so answers do not depend on the timer task's punctuality. Times come from
//! [`Clock`], which follows tokio's clock so tests can move it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::state::GroupState;
use super::store::{CommittedOffset, Record};
use super::Inner;

/// Wall-clock milliseconds derived from tokio's clock: the wall time at start plus the
/// tokio time elapsed since, so a paused and advanced test clock moves commit times and
/// expiry together.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall_ms: i64,
}

impl Clock {
    pub fn new(start: Instant) -> Self {
        let start_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            start,
            start_wall_ms,
        }
    }

    /// Milliseconds since the Unix epoch at `at`.
    pub fn wall_ms(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.start).as_millis() as i64;
        let before = self.start.saturating_duration_since(at).as_millis() as i64;
        self.start_wall_ms + elapsed - before
    }
}

/// Default `offsets.retention.check.interval.ms` (Kafka: GroupCoordinatorConfig).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(600_000);

impl Inner {
    /// Runs the expiry check if it is due.
    pub(super) fn expire_offsets_if_due(&mut self, now: Instant) {
        if now < self.next_expiry_check {
            return;
        }
        self.next_expiry_check = now + self.config.offsets_retention_check_interval;
        self.expire_offsets(now);
    }

    /// Drops expired offsets and deletes Empty groups left without offsets.
    // Kafka: GroupCoordinatorShard.cleanupGroupMetadata → OffsetMetadataManager.cleanupExpiredOffsets
    fn expire_offsets(&mut self, now: Instant) {
        let now_ms = self.clock.wall_ms(now);
        let retention_ms = self.config.offsets_retention.as_millis() as i64;
        let mut expired = Vec::new();
        let mut doomed_groups = Vec::new();
        for (group_id, group) in &self.groups {
            // Kafka: ClassicGroup.offsetExpirationCondition; the topics a Stable consumer
            // group subscribes to keep their offsets (OffsetMetadataManager
            // .cleanupExpiredOffsets, isSubscribedToTopic).
            let mut subscribed = std::collections::BTreeSet::new();
            let base_ms: Box<dyn Fn(&CommittedOffset) -> i64> = match group.protocol_type() {
                Some(_) if group.state() == GroupState::Empty => {
                    let since = group.empty_since().map(|t| self.clock.wall_ms(t));
                    Box::new(move |c| since.unwrap_or(c.commit_timestamp_ms))
                }
                Some("consumer") if group.state() == GroupState::Stable => {
                    match group.subscribed_topics() {
                        Some(topics) => subscribed = topics,
                        None => continue,
                    }
                    Box::new(|c| c.commit_timestamp_ms)
                }
                Some(_) => continue,
                None => Box::new(|c| c.commit_timestamp_ms),
            };
            let mut all_expired = true;
            for ((topic, partition), c) in self.offsets.group(group_id).into_iter().flatten() {
                // Kafka: OffsetMetadataManager.cleanupExpiredOffsets ("we don't expire the
                // offset yet if there is a pending transactional offset").
                if subscribed.contains(topic)
                    || self.has_pending_txn_offset(group_id, topic, *partition)
                {
                    all_expired = false;
                    continue;
                }
                // Kafka: OffsetExpirationConditionImpl.isOffsetExpired
                let is_expired = match c.expire_timestamp_ms {
                    Some(at) => now_ms >= at,
                    None => now_ms - base_ms(c) >= retention_ms,
                };
                if is_expired {
                    expired.push((group_id.clone(), topic.clone(), *partition));
                } else {
                    all_expired = false;
                }
            }
            if all_expired && group.state() == GroupState::Empty {
                doomed_groups.push(group_id.clone());
            }
        }
        if expired.is_empty() && doomed_groups.is_empty() {
            return;
        }
        let records: Vec<Record> = expired
            .iter()
            .map(|(group, topic, partition)| Record::OffsetDelete {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            })
            .chain(
                doomed_groups
                    .iter()
                    .map(|g| Record::GroupDelete { group: g.clone() }),
            )
            .collect();
        if let Err(error) = self.store.append(&records) {
            tracing::error!(%error, offsets = expired.len(), "Cannot persist expired offsets; keeping them.");
            return;
        }
        tracing::info!(
            offsets = expired.len(),
            groups = doomed_groups.len(),
            "Expired committed offsets (offsets.retention.minutes)."
        );
        for (group, topic, partition) in expired {
            self.offsets.remove(&group, &topic, partition);
        }
        for group in doomed_groups {
            if let Some(mut g) = self.groups.remove(&group) {
                g.mark_dead();
            }
            self.offsets.remove_group(&group);
        }
    }
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
