//! Lag while fetching is held back. A partition's high watermark comes with its Fetch
//! responses; once its memory share is full (a slow or stopped target), it is not fetched,
//! and its lag would stay what it was when fetching stopped while the source grows. So
//! every [`LAG_REFRESH`] the partitions no Fetch answered for that long get their log end
//! offset from their source leaders (ListOffsets, one at a time, off the fetch loop). So do
//! the partitions no Fetch has answered at all: their lag would be unknown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::client::{list_offsets, ClusterClient};
use crate::mirror::progress::SourcePartition;
use crate::telemetry::stats::PartitionStats;

/// How often, and after how long without a Fetch, a partition's lag is refreshed.
pub(super) const LAG_REFRESH: Duration = Duration::from_secs(5);

/// The refresh due next, and the one under way.
#[derive(Default)]
pub(super) struct LagRefresh {
    next: Option<Instant>,
    task: Option<JoinHandle<()>>,
}

impl LagRefresh {
    /// Starts a refresh of the `partitions` no Fetch answered for [`LAG_REFRESH`], when
    /// one is due and none is under way.
    pub(super) fn maybe_start<'a>(
        &mut self,
        source: &Arc<ClusterClient>,
        partitions: impl Iterator<Item = (&'a SourcePartition, &'a Arc<PartitionStats>)>,
    ) {
        let now = Instant::now();
        if self.next.is_some_and(|n| n > now)
            || self.task.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.next = Some(now + LAG_REFRESH);
        let now_ms = crate::telemetry::stats::now_ms();
        let stale: Vec<_> = partitions
            .filter(|(_, stats)| due(stats, now_ms))
            .map(|(sp, stats)| (sp.clone(), stats.clone()))
            .collect();
        if !stale.is_empty() {
            self.task = Some(tokio::spawn(refresh(source.clone(), stale)));
        }
    }

    /// Ends a refresh under way (the flow stops).
    pub(super) fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Whether no Fetch answered for `stats`'s partition for [`LAG_REFRESH`], or none ever did
/// since the flow counted it that long ago (its lag would be unknown).
fn due(stats: &PartitionStats, now_ms: i64) -> bool {
    match stats.fetched_ago() {
        Some(ago) => ago >= LAG_REFRESH,
        None => now_ms - stats.created_ms() >= LAG_REFRESH.as_millis() as i64,
    }
}

/// Asks each partition's source leader for its log end offset. A partition whose leader
/// cannot say is left as it was: the next refresh asks again.
async fn refresh(source: Arc<ClusterClient>, stale: Vec<(SourcePartition, Arc<PartitionStats>)>) {
    for (sp, stats) in stale {
        match source
            .list_offset(&sp.topic, sp.partition, list_offsets::LATEST)
            .await
        {
            Ok(offset) => stats.listed(offset),
            Err(e) => {
                tracing::debug!(topic = %sp.topic, partition = sp.partition, error = %e, "No log end offset for the lag.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition no Fetch has answered is listed once the flow has counted it for the
    /// refresh interval: without that its lag stays unknown for as long as Fetch fails.
    #[test]
    fn a_partition_never_fetched_is_due_after_the_refresh_interval() {
        let flow = crate::telemetry::stats::FlowStats::new("f", ("a", "b"), None);
        let sp = SourcePartition {
            topic: "t".into(),
            partition: 0,
        };
        let p = flow.partition(&sp, 0);
        let refresh_ms = LAG_REFRESH.as_millis() as i64;
        assert!(!due(&p, p.created_ms() + refresh_ms - 1));
        assert!(due(&p, p.created_ms() + refresh_ms));
        p.listed(40);
        assert_eq!(p.lag_records(), Some(40), "listed: known");
        p.fetched(40, 40);
        assert!(
            !due(&p, p.created_ms() + refresh_ms),
            "a Fetch answered just now"
        );
    }
}
